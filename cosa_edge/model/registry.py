"""Models by name, so that training, cross-validation and tables can ask for any of them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from ..config import ModelConfig
from ..data.preprocess import DEFAULT_NORMALISATION, Normalisation, normalisation_for
from ..errors import CosaEdgeError
from .networks import EncoderDecoderNet, LeNet, ResNetClassifier, VGG16Classifier


@dataclass(frozen=True)
class Architecture:
    build: Callable[[ModelConfig], nn.Module]
    description: str
    tasks: tuple[str, ...]


def _pretrained(config: ModelConfig) -> Path | str | None:
    """A weights file, or "imagenet" (torchvision's weights by name, model/encoders.py), or None."""
    if not config.pretrained:
        return None
    return config.pretrained if config.pretrained == "imagenet" else Path(config.pretrained)


def _u_net(head: str | None) -> Callable[[ModelConfig], nn.Module]:
    return lambda c: EncoderDecoderNet(c.encoder, c.decoder_channels, head, c.num_classes, _pretrained(c))


SEG_AND_CLS = ("segmentation", "classification")
ARCHITECTURES: dict[str, Architecture] = {
    "uresnet": Architecture(_u_net(None), "U-shaped ResNet (single-task segmentation)", ("segmentation",)),
    "resnet": Architecture(lambda c: ResNetClassifier(c.encoder, c.num_classes, _pretrained(c)),
                           "ResNet (single-task classification)", ("classification",)),
    "vgg16": Architecture(lambda c: VGG16Classifier(c.num_classes), "VGG-16 (single-task classification)",
                          ("classification",)),
    "lenet": Architecture(lambda c: LeNet(c.num_classes), "LeNet (single-task classification)", ("classification",)),
    "mtl": Architecture(_u_net("fc"), "MTL: UResNet + GAP/FC classifier on C5", SEG_AND_CLS),
    "mtl_sa": Architecture(_u_net("sa"), "MTL-SA: MTL with self-attention on C5", SEG_AND_CLS),
    "mtl_cosa": Architecture(_u_net("cosa"), "MTL-COSA: MTL with the COSA module", SEG_AND_CLS),
}


def build_model(config: ModelConfig) -> nn.Module:
    """The model, with ``normalisation``: the input statistics its encoder expects, which training, evaluation
    and the exported graph all apply (data/preprocess.py normalisation_for)."""
    if config.architecture not in ARCHITECTURES:
        raise CosaEdgeError(f"unknown architecture {config.architecture!r}; choose one of {', '.join(ARCHITECTURES)}")
    if config.image_size % 32:
        raise CosaEdgeError(f"image size {config.image_size} must be a multiple of 32 (the encoder's stride)")
    model = ARCHITECTURES[config.architecture].build(config)
    model.normalisation = normalisation_for(config.encoder)
    return model


def model_normalisation(model: nn.Module) -> Normalisation:
    """A model's input statistics (the default for a module built before models carried them)."""
    return getattr(model, "normalisation", DEFAULT_NORMALISATION)
