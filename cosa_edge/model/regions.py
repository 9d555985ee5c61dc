"""The COSA region maps in PyTorch: the op used inside the model.

It follows :mod:`cosa_edge.kernels.reference` step by step (the spec) with
standard ops that also export to ONNX: replicate-padded Sobel convolutions,
a 5x5 max-pool as the dilation, an average pool as the area average. The maps
carry no gradient: the argmax is not differentiable, and the paper uses the
segmentation result as fixed prior knowledge.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

_SOBEL_X = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
MARGIN_KERNEL = 5
_SOBEL_ON_DEVICE: dict[torch.device, torch.Tensor] = {}


def _sobel_filters(device: torch.device) -> torch.Tensor:
    """The (2, 1, 3, 3) Sobel pair on ``device``, copied there once.

    Copying it from host memory on every call made each forward pass wait for the GPU to drain
    (a pageable host-to-device copy synchronises): on an H200 the op took ~750 us a call, nearly
    all of it waiting (scripts/gpu_check.py, docs/deployment.md).
    """
    filters = _SOBEL_ON_DEVICE.get(device)
    if filters is None:
        filters = _SOBEL_ON_DEVICE[device] = torch.stack([_SOBEL_X, _SOBEL_X.T]).unsqueeze(1).to(device)
    return filters


@torch.no_grad()
def region_maps(seg_logits: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """(N, 2, H, W) segmentation scores -> (N, 3, h, w) background / tumour / margin fractions."""
    lesion = (seg_logits[:, 1:2] > seg_logits[:, 0:1]).float()
    sobel = _sobel_filters(lesion.device)  # (2, 1, 3, 3)
    gradients = F.conv2d(F.pad(lesion, (1, 1, 1, 1), mode="replicate"), sobel)
    contour = (gradients != 0).any(dim=1, keepdim=True).float()
    # Max-pooling pads with -inf, which for a 0/1 map is dilation with zeros outside the image.
    margin = F.max_pool2d(contour, MARGIN_KERNEL, stride=1, padding=MARGIN_KERNEL // 2)
    tumour = lesion * (1 - margin)
    background = (1 - lesion) * (1 - margin)
    full = torch.cat([background, tumour, margin], dim=1)
    # Plain ints: the spatial size is fixed in an exported graph (only the batch varies), and
    # pooling needs constant kernel sizes.
    height, width, grid = int(full.shape[-2]), int(full.shape[-1]), (int(grid[0]), int(grid[1]))
    if height % grid[0] or width % grid[1]:
        raise ValueError(f"a {height}x{width} map does not tile into a {grid[0]}x{grid[1]} grid")
    return F.avg_pool2d(full, kernel_size=(height // grid[0], width // grid[1]))
