"""MTL-COSA and the paper's comparison models, each returning named outputs.

Every model's ``forward(x)`` takes (B, 1, H, W) normalised grey images and
returns a dict with ``seg_logits`` (B, 2, H, W) and/or ``cls_logits`` (B, 2);
``model.tasks`` says which.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torchvision import models

from .attention import SelfAttention2d
from .cosa import COSA
from .decoder import UDecoder
from .encoders import build_encoder, grey_first_conv

SEG_LOGITS = "seg_logits"
CLS_LOGITS = "cls_logits"
#: What the out-of-distribution score looks at: the texture statistics of the encoder's first three stages.
FEATURES = "features"
#: Early stages carry texture (speckle against photographs' edges and flat areas); tried on phantoms and
#: scikit-image photographs, the last stage alone let 9 of 12 photographs through, these rejected all 12.
OOD_STAGES = 3


def texture_statistics(stages: list[torch.Tensor]) -> torch.Tensor:
    """(N, D): per channel, the mean and standard deviation over the image of the first OOD_STAGES feature maps."""
    parts = []
    for feature_map in stages[:OOD_STAGES]:
        mean = feature_map.mean(dim=(2, 3), keepdim=True)
        # The population SD written out: torch.std exports with a Cast of the pixel count that the FP16
        # converter mistypes, and this plain form exports as ReduceMean, Sub, Mul and Sqrt only.
        deviation = ((feature_map - mean) * (feature_map - mean)).mean(dim=(2, 3)).sqrt()
        parts += [mean.flatten(1), deviation]
    return torch.cat(parts, dim=1)


class EncoderDecoderNet(nn.Module):
    """The family of the paper's U-shaped models.

    ``head`` picks the classification branch: None (UResNet, segmentation only),
    "fc" (MTL: GAP(C5) -> FC), "sa" (MTL-SA: self-attention on C5, used by both
    branches), "cosa" (MTL-COSA: COSA(C5, segmentation) -> FC).
    """

    def __init__(self, encoder: str, decoder_channels: tuple[int, int, int, int], head: str | None,
                 num_classes: int = 2, pretrained: Path | str | None = None) -> None:
        super().__init__()
        self.encoder = build_encoder(encoder, pretrained)
        width = self.encoder.out_channels[-1]
        self.decoder = UDecoder(self.encoder.out_channels, decoder_channels, num_classes)
        self.head = head
        self.self_attention = SelfAttention2d(width) if head == "sa" else None
        self.cosa = COSA(width) if head == "cosa" else None
        self.classifier = nn.Linear(width, num_classes) if head is not None else None
        self.tasks = ("segmentation",) if head is None else ("segmentation", "classification")

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.encoder(x)
        c5 = features[-1]
        if self.self_attention is not None:
            c5 = self.self_attention(c5)
        seg_logits = self.decoder(features, c5, output_size=(x.shape[-2], x.shape[-1]))
        outputs = {SEG_LOGITS: seg_logits, FEATURES: texture_statistics(features)}
        if self.classifier is not None:
            pooled = self.cosa(c5, seg_logits) if self.cosa is not None else c5.mean(dim=(2, 3))
            outputs[CLS_LOGITS] = self.classifier(pooled)
        return outputs


class ResNetClassifier(nn.Module):
    """The single-task ResNet baseline: encoder -> GAP -> FC."""

    tasks = ("classification",)

    def __init__(self, encoder: str, num_classes: int = 2, pretrained: Path | str | None = None) -> None:
        super().__init__()
        self.encoder = build_encoder(encoder, pretrained)
        self.classifier = nn.Linear(self.encoder.out_channels[-1], num_classes)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        stages = self.encoder(x)
        return {CLS_LOGITS: self.classifier(stages[-1].mean(dim=(2, 3))), FEATURES: texture_statistics(stages)}


class VGG16Classifier(nn.Module):
    """torchvision's VGG-16 (with batch norm, which trains from scratch where plain VGG-16 stalls)."""

    tasks = ("classification",)

    def __init__(self, num_classes: int = 2) -> None:
        super().__init__()
        self.net = models.vgg16_bn(weights=None, num_classes=num_classes)
        self.net.features[0] = grey_first_conv(self.net.features[0])

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {CLS_LOGITS: self.net(x)}


class LeNet(nn.Module):
    """LeNet-5 (LeCun et al. 1998) for grey images of any size: the feature map is pooled to 5x5."""

    tasks = ("classification",)

    def __init__(self, num_classes: int = 2) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 6, 5), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.AdaptiveAvgPool2d(5),
        )
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(16 * 25, 120), nn.ReLU(inplace=True),
                                        nn.Linear(120, 84), nn.ReLU(inplace=True), nn.Linear(84, num_classes))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {CLS_LOGITS: self.classifier(self.features(x))}
