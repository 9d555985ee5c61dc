"""The COSA module (paper §2.2, Fig. 2): region-wise self-attention on C5, pooled and fused."""

from __future__ import annotations

import torch
from torch import nn

from .attention import SelfAttention2d
from .regions import region_maps


class COSA(nn.Module):
    """C5 (B, C, h, w) + segmentation logits (B, 2, H, W) -> weighted feature vector F_W (B, C).

    For each region R in (background, tumour, margin): C_R = R * C5 (R
    area-averaged to the C5 grid), S_R = attention(query C5, context C_R),
    P_R = GAP(S_R). F = [P_X, P_Y, P_Z] as (B, 3, C); a 1x1 convolution over the
    three region vectors gives F_W. Each region has its own attention weights,
    since what matters in the margin (spiculation) is not what matters in the
    background (shadowing).
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.attention = nn.ModuleList(SelfAttention2d(channels) for _ in range(3))
        self.fuse = nn.Conv1d(3, 1, kernel_size=1)
        # Swapped for a custom-node version when exporting for the TensorRT plugin (cosa_edge.export).
        self.region_op = region_maps

    def forward(self, c5: torch.Tensor, seg_logits: torch.Tensor) -> torch.Tensor:
        regions = self.region_op(seg_logits.detach(), (int(c5.shape[-2]), int(c5.shape[-1]))).to(c5.dtype)
        pooled = [attention(c5, c5 * regions[:, r:r + 1]).mean(dim=(2, 3))
                  for r, attention in enumerate(self.attention)]
        return self.fuse(torch.stack(pooled, dim=1)).squeeze(1)
