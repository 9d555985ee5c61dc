"""Encoders, adapted to one grey input channel: torchvision's ResNets and timm's EfficientNet-Lite0/1/2.

Contract (as in segmentation_models_pytorch): ``out_channels`` lists the
channels of C1..C5, ``forward`` returns [C1, ..., C5] at strides 2, 4, 8, 16, 32.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torchvision import models

from .._optional import require
from ..config import ENCODERS, LITE_ENCODERS
from ..errors import CosaEdgeError
from .lite_weights import LITE_WEIGHTS, timm_state_dict

_RESNETS = {"resnet18": models.resnet18, "resnet34": models.resnet34,
            "resnet50": models.resnet50, "resnet101": models.resnet101}
ENCODER_NAMES = ENCODERS


def grey_first_conv(conv: nn.Conv2d) -> nn.Conv2d:
    """The same convolution taking one channel; its weights are the RGB weights summed, so a grey
    image replicated to RGB and the grey image itself give the same response."""
    grey = nn.Conv2d(1, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, bias=conv.bias is not None)
    with torch.no_grad():
        grey.weight.copy_(conv.weight.sum(dim=1, keepdim=True))
        if conv.bias is not None:
            grey.bias.copy_(conv.bias)
    return grey


def load_torchvision_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Read an ImageNet checkpoint saved by torchvision (a plain state dict), as data only."""
    path = Path(path)
    if not path.is_file():
        raise CosaEdgeError(f"pretrained weights {path} do not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CosaEdgeError(f"cannot read pretrained weights {path}: {exc}. Expected a torchvision state dict "
                            "(.pth)") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CosaEdgeError(f"{path} is not a state dict of tensors")
    return state


#: ``--pretrained imagenet``: torchvision's ImageNet weights for the encoder, by name.
IMAGENET = "imagenet"


def imagenet_state_dict(name: str) -> dict[str, torch.Tensor]:
    """torchvision's ImageNet-1k weights of ``name`` (its first published set, IMAGENET1K_V1, the one the
    paper's era used), through torchvision's weights API: downloaded once into torch's hub cache, then read
    from it. Offline and not cached: one message with the file to fetch and where to put it."""
    weights = models.get_model_weights(name).IMAGENET1K_V1
    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
    try:
        return weights.get_state_dict(progress=True)
    except OSError as exc:  # URLError, socket errors, a read-only cache
        reason = getattr(exc, "reason", None) or exc
        raise CosaEdgeError(
            f"cannot download torchvision's ImageNet weights for {name} ({reason}). On a machine that is online, "
            f"fetch {weights.url} and put it at {cached} (the cache TORCH_HOME chooses), or pass --pretrained "
            "FILE with that file") from None


class ResNetEncoder(nn.Module):
    def __init__(self, name: str = "resnet18", pretrained: Path | str | None = None) -> None:
        super().__init__()
        if name not in _RESNETS:
            raise CosaEdgeError(f"unknown encoder {name!r}; choose one of {', '.join(ENCODER_NAMES)}")
        net = _RESNETS[name](weights=None)
        if pretrained is not None:
            self._load_rgb_weights(net, name, pretrained)
        net.conv1 = grey_first_conv(net.conv1)
        self.stem = nn.Sequential(net.conv1, net.bn1, net.relu)
        self.pool = net.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = net.layer1, net.layer2, net.layer3, net.layer4
        width = 512 if name in ("resnet18", "resnet34") else 2048
        self.out_channels: tuple[int, ...] = (64, width // 8, width // 4, width // 2, width)

    @staticmethod
    def _load_rgb_weights(net: nn.Module, name: str, path: Path | str) -> None:
        loaded = imagenet_state_dict(name) if str(path) == IMAGENET else load_torchvision_state_dict(Path(path))
        state = {k: v for k, v in loaded.items() if not k.startswith("fc.")}
        expected = {k: v for k, v in net.state_dict().items() if not k.startswith("fc.")}
        missing = sorted(set(expected) - set(state))
        unexpected = sorted(set(state) - set(expected))
        wrong_shape = sorted(k for k in set(state) & set(expected) if state[k].shape != expected[k].shape)
        if missing or unexpected or wrong_shape:
            def show(keys: list[str]) -> str:
                return ", ".join(keys[:5]) + (f" and {len(keys) - 5} more" if len(keys) > 5 else "") if keys else "none"
            raise CosaEdgeError(
                f"{path} does not fit torchvision's {name}: missing keys: {show(missing)}; unexpected keys: "
                f"{show(unexpected)}; wrong shapes: {show(wrong_shape)}. Pass the ImageNet checkpoint of {name} itself"
            )
        net.load_state_dict(state, strict=False)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        c1 = self.stem(x)
        c2 = self.layer1(self.pool(c1))
        c3 = self.layer2(c2)
        c4 = self.layer3(c3)
        return [c1, c2, c3, c4, self.layer4(c4)]


class EfficientNetLiteEncoder(nn.Module):
    """timm's ``tf_efficientnet_lite0/1/2`` as a feature extractor (strides 2 to 32), with one grey input channel.

    ``pretrained="imagenet"``: the ImageNet weights of the installed weight package (model/lite_weights.py), the
    first convolution's RGB filters summed as for the ResNets. Made for edge devices and 8-bit inference: no
    squeeze-excitation, ReLU6.
    """

    def __init__(self, name: str = "efficientnet_lite0", pretrained: Path | str | None = None) -> None:
        super().__init__()
        if name not in LITE_ENCODERS:
            raise CosaEdgeError(f"unknown encoder {name!r}; choose one of {', '.join(ENCODER_NAMES)}")
        timm = require("timm")
        self.net = timm.create_model(LITE_WEIGHTS[name].timm_name, pretrained=False, features_only=True, in_chans=1)
        if pretrained is not None:
            if str(pretrained) != IMAGENET:
                raise CosaEdgeError(f"{name} takes --pretrained imagenet (the installed weights package), not a file")
            head = ("conv_head.", "bn2.", "classifier.")  # the classifier's layers after C5, which the encoder drops
            state = {k: v for k, v in timm_state_dict(name).items() if not k.startswith(head)}
            state["conv_stem.weight"] = state["conv_stem.weight"].sum(dim=1, keepdim=True)
            self.net.load_state_dict(state, strict=True)
        self.out_channels: tuple[int, ...] = tuple(self.net.feature_info.channels())

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return list(self.net(x))


def build_encoder(name: str, pretrained: Path | str | None = None) -> nn.Module:
    """The encoder ``name`` (see ENCODER_NAMES), from scratch or with ImageNet weights."""
    if name in LITE_ENCODERS:
        return EfficientNetLiteEncoder(name, pretrained)
    return ResNetEncoder(name, pretrained)
