"""The fused CUDA kernel: compiled wherever nvcc exists, compared with the reference on a GPU."""

from __future__ import annotations

import importlib.util
import shutil

import numpy as np
import pytest

from cosa_edge.errors import CosaEdgeError
from cosa_edge.kernels.cuda import KERNEL_NAMES, compile_ptx, launch_geometry
from cosa_edge.kernels.reference import region_maps
from tests.masks import crafted_masks, scores_for

needs_nvcc = pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not installed")


@needs_nvcc
@pytest.mark.parametrize("arch", ["compute_75", "compute_90"])
def test_kernel_compiles_to_ptx_with_both_entry_points(arch: str) -> None:
    ptx = compile_ptx(arch)
    for name in KERNEL_NAMES.values():
        assert f".entry {name}(" in ptx
    assert f".target {arch.replace('compute', 'sm')}" in ptx


def test_launch_geometry_is_one_block_per_cell_and_checks_shapes() -> None:
    geometry = launch_geometry((4, 2, 256, 256), (8, 8))
    assert geometry.grid == (8, 8, 4) and geometry.cells == (8, 8)
    assert launch_geometry((1, 2, 256, 128), (8, 4)).scalar_args() == (256, 128, 8, 4)  # the kernel's H, W, h, w
    with pytest.raises(CosaEdgeError, match=r"\(N, 2, H, W\)"):
        launch_geometry((4, 3, 256, 256), (8, 8))
    with pytest.raises(CosaEdgeError, match="does not tile"):
        launch_geometry((1, 2, 100, 100), (8, 8))
    with pytest.raises(CosaEdgeError, match="exceed"):
        launch_geometry((1, 2, 256, 256), (2, 2))


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_kernel_equals_reference_exactly(dtype: type) -> None:
    from cosa_edge.kernels.cuda import CudaRegionMasks

    if all(importlib.util.find_spec(m) is None for m in ("pycuda", "cupy")):
        pytest.skip("needs pycuda or CuPy to launch the kernel; neither is installed")
    kernel = CudaRegionMasks()
    crafted = np.stack([scores_for(m) for m in crafted_masks(256).values()]).astype(dtype)
    rng = np.random.default_rng(0)
    blobs = rng.standard_normal((3, 2, 256, 256)).astype(np.float32)
    import cv2

    smooth = np.stack([np.stack([cv2.GaussianBlur(c, (0, 0), 6) for c in b]) for b in blobs]).astype(dtype)
    noise = rng.standard_normal((2, 2, 256, 256)).astype(dtype)
    odd = rng.standard_normal((2, 2, 96, 160)).astype(dtype)  # 12x20 cells of 8 pixels
    for scores, cells in ((crafted, (8, 8)), (smooth, (8, 8)), (noise, (8, 8)), (odd, (12, 20))):
        expected = region_maps(scores.astype(np.float32), cells)
        np.testing.assert_array_equal(kernel(scores, cells), expected)
