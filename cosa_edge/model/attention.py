"""SAGAN self-attention (Zhang et al. 2019) with the two inputs COSA needs.

Which input plays which role
----------------------------
``forward(query_source, context)``: queries come from ``query_source``; keys,
values and the residual come from ``context``. In COSA the query source is C5
and the context is a regional map C_X = X * C5:

* the values are regional features only, so what a position gathers comes from
  inside the region ("without the interference of other regions", paper §2.2);
* every position of the full C5 still decides *what* it looks for, so the
  region's features are read in the context of the whole image;
* with gamma = 0, as SAGAN starts, the output is C_X itself: at initialisation
  COSA pools plain regional features and learns how much attention to add.

A consequence that the tests pin down: changing the query source at one
position changes the output at that position only; changing the context at
one position changes the output everywhere.
"""

from __future__ import annotations

import torch
from torch import nn


class SelfAttention2d(nn.Module):
    def __init__(self, channels: int, reduction: int = 8) -> None:
        super().__init__()
        inner = max(channels // reduction, 1)
        self.query = nn.Conv2d(channels, inner, 1)
        self.key = nn.Conv2d(channels, inner, 1)
        self.value = nn.Conv2d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, query_source: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        context = query_source if context is None else context
        batch, channels, height, width = context.shape
        q = self.query(query_source).flatten(2)  # (B, C', N)
        k = self.key(context).flatten(2)  # (B, C', N)
        v = self.value(context).flatten(2)  # (B, C, N)
        # attention[b, i, j]: how much query position i attends to key position j (softmax over keys).
        attention = torch.softmax(torch.bmm(q.transpose(1, 2), k), dim=-1)
        out = torch.bmm(v, attention.transpose(1, 2)).view(batch, channels, height, width)
        return self.gamma * out + context
