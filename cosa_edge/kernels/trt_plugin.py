"""The COSA region maps as the TensorRT plugin ``cosa_edge::CosaRegionMasks`` (tensorrt.plugin, TensorRT 10.6+).

Importing this module registers the plugin. An ONNX node reaches it when its
op type is ``CosaRegionMasks`` and it carries ``plugin_namespace="cosa_edge"``
(``cosa-edge export --cosa-op plugin`` writes such a node, with ``aot=1``).

* Ahead-of-time implementation (TensorRT versions with ``tensorrt.plugin.aot_impl``):
  the kernel's PTX is embedded in the engine, which then runs without Python,
  also under trtexec.
* Python implementation otherwise: TensorRT calls back into Python at run time
  and the same kernel is launched through CuPy on TensorRT's stream.

No ``from __future__ import annotations`` here, on purpose: the ``tensorrt.plugin``
decorators read each function's annotations as live classes (``issubclass(annotation,
TensorDesc)``), and postponed annotations would hand them strings. For the same reason the
AOT function's return annotation names TensorRT's own ``KernelLaunchParams`` and
``SymIntExprs`` rather than ``Any``. tests/test_trt_api.py imports this module against the
real ``tensorrt.plugin`` package.
"""

from typing import List, Tuple

import numpy as np
import tensorrt as trt
import tensorrt.plugin as trtp

from .cuda import BLOCK, KERNEL_NAMES, compile_ptx_for_driver, launch_geometry, launch_on_device

PLUGIN_NAMESPACE = "cosa_edge"
PLUGIN_NAME = "CosaRegionMasks"
PLUGIN_ID = f"{PLUGIN_NAMESPACE}::{PLUGIN_NAME}"
HAS_AOT = hasattr(trtp, "aot_impl")
#: PTX for an old virtual architecture is compiled for the actual GPU when the engine loads.
PTX_ARCH = "compute_75"


def check_geometry(scores: trtp.TensorDesc, grid_h: int, grid_w: int) -> None:
    """Refuse, at build time, shapes the kernel would get wrong without a word.

    The kernel crops a map that does not tile into the grid and writes nothing for cells over its
    64-pixel tile; pycuda and CuPy launches check this in launch_geometry, and so must the engine.
    Only known sizes can be checked: the builder's first pass hands over placeholder shapes.
    """
    dims = scores.shape_expr
    if any(d.is_fake or not d.is_constant for d in (dims[2], dims[3])):
        return
    launch_geometry((1, 2, dims[2].constant_value(), dims[3].constant_value()), (grid_h, grid_w))


@trtp.register(PLUGIN_ID)
def region_masks_description(scores: trtp.TensorDesc, grid_h: int, grid_w: int) -> trtp.TensorDesc:
    """(N, 2, H, W) FP32 or FP16 scores -> (N, 3, grid_h, grid_w) FP32 region fractions."""
    check_geometry(scores, grid_h, grid_w)
    return trtp.from_shape_expr((scores.shape_expr[0], 3, grid_h, grid_w), dtype=trt.float32)


@trtp.autotune(PLUGIN_ID)
def region_masks_autotune(scores: trtp.TensorDesc, grid_h: int, grid_w: int,
                          outputs: Tuple[trtp.TensorDesc]) -> List[trtp.AutoTuneCombination]:
    # Input FP32 or FP16, output always FP32 (the maps are exact fractions; FP16 would round them).
    return [trtp.AutoTuneCombination("FP32|FP16, FP32", "LINEAR")]


@trtp.impl(PLUGIN_ID)
def region_masks_python(scores: trtp.Tensor, grid_h: int, grid_w: int, outputs: Tuple[trtp.Tensor],
                        stream: int) -> None:
    launch_on_device(scores, outputs[0], (grid_h, grid_w), stream)


if HAS_AOT:

    @trtp.aot_impl(PLUGIN_ID)
    def region_masks_aot(scores: trtp.TensorDesc, grid_h: int, grid_w: int, outputs: Tuple[trtp.TensorDesc],
                         tactic: int) -> Tuple[bytes, bytes, trtp.KernelLaunchParams, trtp.SymIntExprs]:
        check_geometry(scores, grid_h, grid_w)
        dims = scores.shape_expr
        kernel = KERNEL_NAMES[np.dtype(np.float16 if scores.dtype == trt.float16 else np.float32)]
        launch = trtp.KernelLaunchParams()
        launch.grid_x, launch.grid_y, launch.grid_z = grid_w, grid_h, dims[0]  # one block per output cell
        launch.block_x, launch.block_y, launch.block_z = BLOCK
        launch.shared_mem = 0  # the kernel's shared arrays are static
        # The kernel's scalar parameters, after its input and before its output: H, W, h, w.
        extra_args = trtp.SymIntExprs.from_tuple([trtp.SymInt32(e) for e in (dims[2], dims[3], grid_h, grid_w)])
        # The engine is built on the machine that runs it, so the PTX is made loadable by this driver.
        return kernel.encode(), compile_ptx_for_driver(PTX_ARCH).encode(), launch, extra_args
