"""The U-shaped segmentation branch of the paper: from C5 up through C4..C1 to the input size."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def upsample_bilinear(x: torch.Tensor, size: tuple[int, int] | torch.Size) -> torch.Tensor:
    """Bilinear resize to ``size``; an exact doubling is written as a scale factor of 2.

    Both forms compute the same values (PyTorch maps coordinates with the scale in/out = 1/2 either
    way). The difference is in the exported graph: ``size=`` taken from another tensor's shape becomes
    a Shape -> Gather -> Concat chain feeding Resize, which ONNX Runtime cannot move into its blocked
    NCHWc layout, so every decoder stage paid for layout reorders around the Resize and the Concat.
    A constant scale keeps the whole decoder in that layout and gives TensorRT static shapes.
    """
    height, width = (int(v) for v in x.shape[-2:])
    if (int(size[0]), int(size[1])) == (2 * height, 2 * width):
        return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def conv_bn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
                         nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))


class UpBlock(nn.Module):
    """U_i: upsample the deeper map to the skip's size, concatenate, two 3x3 convolutions."""

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int) -> None:
        super().__init__()
        self.convs = nn.Sequential(conv_bn_relu(in_channels + skip_channels, out_channels),
                                   conv_bn_relu(out_channels, out_channels))

    def forward(self, deeper: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        deeper = upsample_bilinear(deeper, skip.shape[-2:])
        return self.convs(torch.cat([deeper, skip], dim=1))


class UDecoder(nn.Module):
    """C5 -> U4 (with C4) -> U3 -> U2 -> U1 (with C1, stride 2) -> 3x3 conv -> bilinear to input size."""

    def __init__(self, encoder_channels: tuple[int, ...], decoder_channels: tuple[int, int, int, int],
                 num_classes: int = 2) -> None:
        super().__init__()
        skips = encoder_channels[3::-1]  # C4, C3, C2, C1
        ins = (encoder_channels[4], *decoder_channels[:-1])
        self.blocks = nn.ModuleList(UpBlock(i, s, o) for i, s, o in zip(ins, skips, decoder_channels))
        self.head = nn.Conv2d(decoder_channels[-1], num_classes, 3, padding=1)

    def forward(self, features: list[torch.Tensor], c5: torch.Tensor, output_size: tuple[int, int]) -> torch.Tensor:
        x = c5
        for block, skip in zip(self.blocks, features[3::-1]):
            x = block(x, skip)
        return upsample_bilinear(self.head(x), output_size)
