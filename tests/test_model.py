from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")

from cosa_edge.config import ModelConfig  # noqa: E402
from cosa_edge.errors import CosaEdgeError  # noqa: E402
from cosa_edge.model import ARCHITECTURES, CLS_LOGITS, SEG_LOGITS, build_model  # noqa: E402
from cosa_edge.model.attention import SelfAttention2d  # noqa: E402
from cosa_edge.model.cosa import COSA  # noqa: E402
from cosa_edge.model.decoder import upsample_bilinear  # noqa: E402


@pytest.mark.parametrize("architecture", list(ARCHITECTURES))
def test_every_architecture_returns_its_named_outputs(architecture: str) -> None:
    model = build_model(ModelConfig(architecture=architecture, image_size=64, decoder_channels=(32, 16, 16, 8))).eval()
    with torch.no_grad():
        outputs = model(torch.randn(2, 1, 64, 64))
    tasks = ARCHITECTURES[architecture].tasks
    assert (SEG_LOGITS in outputs) == ("segmentation" in tasks)
    assert (CLS_LOGITS in outputs) == ("classification" in tasks)
    if SEG_LOGITS in outputs:
        assert outputs[SEG_LOGITS].shape == (2, 2, 64, 64)
    if CLS_LOGITS in outputs:
        assert outputs[CLS_LOGITS].shape == (2, 2)
    assert tuple(model.tasks) == tasks


def test_paper_preset_builds_resnet101() -> None:
    from cosa_edge.config import load_preset

    config = load_preset("paper")
    assert ((config.model.encoder, config.model.image_size, config.epochs, config.batch_size)
            == ("resnet101", 256, 100, 12))
    assert ((config.lr, config.betas, config.weight_decay, config.seg_weight, config.cls_weight)
            == (1e-4, (0.9, 0.99), 5e-4, 0.8, 0.2))
    model = build_model(config.model)
    assert model.encoder.out_channels[-1] == 2048


def test_attention_query_comes_from_the_first_input_and_values_from_the_second() -> None:
    torch.manual_seed(0)
    attention = SelfAttention2d(16).eval()
    with torch.no_grad():
        attention.gamma.fill_(1.0)
    query_source, context = torch.randn(1, 16, 4, 4), torch.randn(1, 16, 4, 4)
    base = attention(query_source, context)

    moved_query = query_source.clone()
    moved_query[..., 1, 2] += 5.0
    changed = (attention(moved_query, context) - base).abs().sum(dim=1)[0] > 1e-6
    assert changed[1, 2] and changed.sum() == 1  # a query only changes its own output position

    moved_context = context.clone()
    moved_context[..., 1, 2] += 5.0
    changed = (attention(query_source, moved_context) - base).abs().sum(dim=1)[0] > 1e-6
    assert changed.all()  # a key/value is seen from every position


def test_attention_starts_as_identity_on_the_context() -> None:
    attention = SelfAttention2d(16)
    context = torch.randn(2, 16, 3, 3)
    assert torch.equal(attention(torch.randn(2, 16, 3, 3), context), context)


def test_cosa_pools_region_weighted_c5_at_initialisation() -> None:
    """With gamma = 0 each region's pooled vector is the mean of C5 weighted by that region's map."""
    cosa = COSA(8).eval()
    c5 = torch.randn(1, 8, 2, 2)
    seg = torch.zeros(1, 2, 64, 64)
    seg[:, 1, :32, :32] = 1.0  # lesion in the top-left cell of the 2x2 grid
    from cosa_edge.model.regions import region_maps

    regions = region_maps(seg, (2, 2))
    with torch.no_grad():
        cosa.fuse.weight.zero_()
        cosa.fuse.weight[0, 1, 0] = 1.0  # select the tumour vector
        cosa.fuse.bias.zero_()
        got = cosa(c5, seg)
    expected = (c5 * regions[:, 1:2]).mean(dim=(2, 3))
    torch.testing.assert_close(got, expected)


def test_image_size_must_tile_the_encoder_stride() -> None:
    with pytest.raises(CosaEdgeError, match="multiple of 32"):
        build_model(ModelConfig(image_size=100))


def test_pretrained_weights_load_and_wrong_keys_are_named(tmp_path: Path) -> None:
    reference = torchvision.models.resnet18(weights=None)
    good = tmp_path / "resnet18.pth"
    torch.save(reference.state_dict(), good)
    model = build_model(ModelConfig(architecture="mtl_cosa", image_size=64, pretrained=str(good)))
    # The grey first convolution is the RGB one summed over channels.
    torch.testing.assert_close(model.encoder.stem[0].weight, reference.conv1.weight.sum(dim=1, keepdim=True))
    torch.testing.assert_close(model.encoder.layer4[1].conv2.weight, reference.layer4[1].conv2.weight)

    wrong = tmp_path / "resnet34.pth"
    torch.save(torchvision.models.resnet34(weights=None).state_dict(), wrong)
    with pytest.raises(CosaEdgeError, match=r"unexpected keys: layer1\.2"):
        build_model(ModelConfig(image_size=64, pretrained=str(wrong)))
    with pytest.raises(CosaEdgeError, match="do not exist"):
        build_model(ModelConfig(image_size=64, pretrained=str(tmp_path / "missing.pth")))
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(CosaEdgeError, match="cannot read pretrained weights"):
        build_model(ModelConfig(image_size=64, pretrained=str(garbage)))


def _no_network(url: str, *args: object, **kwargs: object) -> None:
    """Stands in for an offline machine: torch.hub's download fails as urllib fails without a network."""
    import urllib.error

    raise urllib.error.URLError("no network here")


@pytest.fixture
def offline_hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty torch.hub cache on a machine without a network: the folder torchvision's weights go to."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "download_url_to_file", _no_network)
    return tmp_path / "torch" / "hub" / "checkpoints"


def test_imagenet_by_name_reads_torchvision_s_cache_without_a_network(offline_hub_cache: Path) -> None:
    # Real: torchvision's weights API and torch.hub's cache lookup. Stand-in: the cached file is a state dict
    # made here (the real one is 45 MB from download.pytorch.org, which this machine cannot reach).
    weights = torchvision.models.ResNet18_Weights.IMAGENET1K_V1
    cached = offline_hub_cache / Path(weights.url).name
    cached.parent.mkdir(parents=True)
    reference = torchvision.models.resnet18(weights=None)
    torch.save(reference.state_dict(), cached)
    model = build_model(ModelConfig(architecture="mtl_cosa", image_size=64, pretrained="imagenet"))
    torch.testing.assert_close(model.encoder.stem[0].weight, reference.conv1.weight.sum(dim=1, keepdim=True))
    torch.testing.assert_close(model.encoder.layer3[0].conv1.weight, reference.layer3[0].conv1.weight)


def test_imagenet_by_name_offline_says_which_file_to_fetch_and_where(offline_hub_cache: Path) -> None:
    weights = torchvision.models.ResNet34_Weights.IMAGENET1K_V1
    expected_place = offline_hub_cache / Path(weights.url).name
    with pytest.raises(CosaEdgeError) as raised:
        build_model(ModelConfig(architecture="resnet", encoder="resnet34", image_size=64, pretrained="imagenet"))
    message = str(raised.value)
    assert "no network here" in message and weights.url in message and str(expected_place) in message


def test_upsampling_by_scale_equals_upsampling_to_size() -> None:
    features = torch.randn(2, 5, 7, 9)
    for size in [(14, 18), (13, 18), (28, 36)]:  # a doubling (written as scale 2) and two that are not
        expected = torch.nn.functional.interpolate(features, size=size, mode="bilinear", align_corners=False)
        assert torch.equal(upsample_bilinear(features, size), expected)
