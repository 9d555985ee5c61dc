"""Every CUDA call of cosa-edge lives here, so that the binding can change in one place.

The fused region-mask kernel (``cosa_masks.cu``) is compiled to PTX by nvcc and
launched through pycuda, the project's CUDA binding; where pycuda is absent but
CuPy is present (CuPy compiles the same source with NVRTC), CuPy launches it.
"""

from __future__ import annotations

import ctypes
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CosaEdgeError

KERNEL_FILE = "cosa_masks.cu"
KERNEL_NAMES = {np.dtype(np.float32): "cosa_region_masks_f32", np.dtype(np.float16): "cosa_region_masks_f16"}
MAX_TILE = 64  # COSA_MAX_TILE in the kernel: the largest cell (H/h or W/w) it handles
BLOCK = (16, 16, 1)


def kernel_source() -> str:
    return resources.files("cosa_edge.kernels").joinpath(KERNEL_FILE).read_text(encoding="utf-8")


def compile_ptx(arch: str = "compute_75", nvcc: str | None = None) -> str:
    """Compile the kernel to PTX with nvcc. PTX for an older virtual architecture runs on newer GPUs.

    The PTX carries the ISA version of the nvcc that wrote it; :func:`compile_ptx_for_driver`
    makes it loadable by an older driver.
    """
    nvcc = nvcc or shutil.which("nvcc")
    if nvcc is None:
        raise CosaEdgeError("nvcc is needed to compile the COSA kernel but is not on PATH; install the CUDA toolkit")
    with tempfile.TemporaryDirectory() as tmp:
        source, ptx = Path(tmp) / KERNEL_FILE, Path(tmp) / "cosa_masks.ptx"
        source.write_text(kernel_source(), encoding="utf-8")
        result = subprocess.run([nvcc, "-ptx", f"-arch={arch}", "-o", str(ptx), str(source)],
                                capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise CosaEdgeError(f"nvcc failed to compile {KERNEL_FILE}:\n{result.stderr.strip()}")
        return ptx.read_text(encoding="utf-8")


# The newest PTX ISA each CUDA release's driver accepts (NVIDIA's PTX ISA manual, "Release notes").
# A driver refuses PTX whose `.version` is newer than its own CUDA release: PTX from nvcc 13
# (`.version 9.0`) does not load on a CUDA 12 driver.
PTX_ISA_BY_CUDA: dict[tuple[int, int], tuple[int, int]] = {
    (11, 0): (7, 0), (11, 1): (7, 1), (11, 2): (7, 2), (11, 3): (7, 3), (11, 4): (7, 4), (11, 5): (7, 5),
    (11, 6): (7, 6), (11, 7): (7, 7), (11, 8): (7, 8),
    (12, 0): (8, 0), (12, 1): (8, 1), (12, 2): (8, 2), (12, 3): (8, 3), (12, 4): (8, 4), (12, 5): (8, 5),
    (12, 6): (8, 5), (12, 8): (8, 7), (12, 9): (8, 8),
    (13, 0): (9, 0),
}
# The oldest PTX ISA that can target each architecture: lowering below it is not allowed.
MIN_PTX_ISA_BY_TARGET: dict[str, tuple[int, int]] = {
    "sm_75": (6, 3), "sm_80": (7, 0), "sm_86": (7, 1), "sm_87": (7, 4), "sm_89": (7, 8), "sm_90": (7, 8),
    "sm_100": (8, 6), "sm_120": (8, 7),
}
_VERSION_LINE = re.compile(r"^\.version (\d+)\.(\d+)$", re.MULTILINE)
_TARGET_LINE = re.compile(r"^\.target (\w+)", re.MULTILINE)


def ptx_isa_version(ptx: str) -> tuple[int, int]:
    match = _VERSION_LINE.search(ptx)
    if match is None:
        raise CosaEdgeError("the compiled kernel has no PTX .version line; it is not PTX")
    return int(match.group(1)), int(match.group(2))


def max_ptx_isa(driver_cuda: tuple[int, int]) -> tuple[int, int] | None:
    """The newest PTX ISA a driver of this CUDA version loads; None for one newer than the table knows."""
    known = [cuda for cuda in PTX_ISA_BY_CUDA if cuda <= driver_cuda]
    if not known:
        raise CosaEdgeError(f"the NVIDIA driver supports CUDA {driver_cuda[0]}.{driver_cuda[1]}, older than "
                            "cosa-edge's kernel needs (CUDA 11.0); update the driver")
    if driver_cuda > max(PTX_ISA_BY_CUDA):
        return None
    return PTX_ISA_BY_CUDA[max(known)]


def make_loadable(ptx: str, driver_cuda: tuple[int, int]) -> str:
    """Lower the PTX's ISA version to what the driver accepts, or say why it cannot be.

    Lowering is sound only while the code uses nothing newer than the lowered version: the kernel
    uses plain loads, stores, comparisons, conversions, shared-memory atomics and barriers, all in
    PTX ISA 6.3 (tests/test_ptx.py assembles the lowered PTX with ptxas to check that), so the
    floor is the target architecture's own minimum.
    """
    version = ptx_isa_version(ptx)
    allowed = max_ptx_isa(driver_cuda)
    if allowed is None or version <= allowed:
        return ptx
    target_match = _TARGET_LINE.search(ptx)
    target = target_match.group(1) if target_match else "?"
    floor = MIN_PTX_ISA_BY_TARGET.get(target)
    if floor is None or allowed < floor:
        raise CosaEdgeError(
            f"the kernel's PTX (ISA {version[0]}.{version[1]}, target {target}) cannot be made loadable by this "
            f"driver (CUDA {driver_cuda[0]}.{driver_cuda[1]}, PTX ISA up to {allowed[0]}.{allowed[1]}); "
            "update the NVIDIA driver, or compile with an nvcc no newer than the driver")
    return _VERSION_LINE.sub(f".version {allowed[0]}.{allowed[1]}", ptx, count=1)


def driver_cuda_version() -> tuple[int, int] | None:
    """The CUDA version of the installed NVIDIA driver (cuDriverGetVersion), or None where there is none.

    Through ctypes on libcuda, so that it works whichever CUDA binding (pycuda, CuPy, cuda-python)
    is installed, and needs no GPU context.
    """
    try:
        libcuda = ctypes.CDLL("libcuda.so.1" if sys.platform != "win32" else "nvcuda.dll")
    except OSError:
        return None
    version = ctypes.c_int(0)
    if libcuda.cuDriverGetVersion(ctypes.byref(version)) != 0:
        return None
    return version.value // 1000, (version.value % 1000) // 10


def compile_ptx_for_driver(arch: str = "compute_75", driver_cuda: tuple[int, int] | None = None,
                           nvcc: str | None = None) -> str:
    """Compile the kernel to PTX that this machine's driver loads (engines are built where they run).

    With no driver found (a machine without a GPU), the PTX is left as nvcc wrote it.
    """
    ptx = compile_ptx(arch, nvcc)
    driver_cuda = driver_cuda or driver_cuda_version()
    return make_loadable(ptx, driver_cuda) if driver_cuda else ptx


@dataclass(frozen=True)
class LaunchGeometry:
    grid: tuple[int, int, int]
    block: tuple[int, int, int]
    shape: tuple[int, int, int, int]  # the scores' (N, 2, H, W)
    cells: tuple[int, int]  # the output grid (h, w)

    def scalar_args(self) -> tuple[np.int32, np.int32, np.int32, np.int32]:
        """The kernel's int parameters, between its scores and its output: H, W, h, w."""
        _, _, height, width = self.shape
        h, w = self.cells
        return np.int32(height), np.int32(width), np.int32(h), np.int32(w)


def launch_geometry(scores_shape: tuple[int, ...], cells: tuple[int, int]) -> LaunchGeometry:
    """Check the shapes the kernel supports and compute its launch grid (one block per output cell)."""
    if len(scores_shape) != 4 or scores_shape[1] != 2:
        raise CosaEdgeError(f"the region-mask kernel takes scores of shape (N, 2, H, W), not {scores_shape}")
    n, _, height, width = scores_shape
    h, w = cells
    if height % h or width % w:
        raise CosaEdgeError(f"a {height}x{width} map does not tile into a {h}x{w} grid")
    if height // h > MAX_TILE or width // w > MAX_TILE:
        raise CosaEdgeError(f"cells of {height // h}x{width // w} pixels exceed the kernel's {MAX_TILE}-pixel tile")
    return LaunchGeometry(grid=(w, h, n), block=BLOCK, shape=(n, 2, height, width), cells=(h, w))


class CudaRegionMasks:
    """The fused kernel as a callable on host arrays: (N, 2, H, W) float32/float16 -> (N, 3, h, w) float32."""

    def __init__(self, binding: str | None = None) -> None:
        self._binding = _pick_binding(binding)

    @property
    def binding(self) -> str:
        return self._binding.name

    def __call__(self, scores: np.ndarray, cells: tuple[int, int]) -> np.ndarray:
        scores = np.ascontiguousarray(scores)
        if scores.dtype not in KERNEL_NAMES:
            raise CosaEdgeError(f"the region-mask kernel takes float32 or float16 scores, not {scores.dtype}")
        geometry = launch_geometry(scores.shape, cells)
        return self._binding.run(KERNEL_NAMES[scores.dtype], scores, geometry)

    def synchronize(self) -> None:
        self._binding.synchronize()


class _PycudaBinding:
    name = "pycuda"

    def __init__(self) -> None:
        import pycuda.autoinit  # noqa: F401  (creates the context on the first GPU)
        import pycuda.driver as driver

        self._driver = driver
        major, minor = driver.Context.get_device().compute_capability()
        self._module = driver.module_from_buffer(compile_ptx_for_driver(f"compute_{major}{minor}").encode())
        self._functions: dict[str, Any] = {}

    def run(self, kernel: str, scores: np.ndarray, geometry: LaunchGeometry) -> np.ndarray:
        driver = self._driver
        function = self._functions.setdefault(kernel, self._module.get_function(kernel))
        out = np.empty((geometry.shape[0], 3, *geometry.cells), np.float32)
        function(driver.In(scores), *geometry.scalar_args(), driver.Out(out), block=geometry.block, grid=geometry.grid)
        return out

    def synchronize(self) -> None:
        self._driver.Context.synchronize()


class _CupyBinding:
    name = "cupy"

    def __init__(self) -> None:
        import cupy

        self._cupy = cupy
        self._module = _cupy_module(cupy)

    def run(self, kernel: str, scores: np.ndarray, geometry: LaunchGeometry) -> np.ndarray:
        cupy = self._cupy
        device_scores = cupy.asarray(scores)
        out = cupy.empty((geometry.shape[0], 3, *geometry.cells), dtype=cupy.float32)
        self._module.get_function(kernel)(geometry.grid, geometry.block, (device_scores, *geometry.scalar_args(), out))
        return cupy.asnumpy(out)

    def synchronize(self) -> None:
        self._cupy.cuda.Device().synchronize()


class PycudaRuntime:
    """The few CUDA runtime calls the TensorRT engine makes: a stream, events, pinned and device buffers."""

    def __init__(self, device: int = 0) -> None:
        from .._optional import require

        driver = require("pycuda.driver")
        driver.init()
        if device >= driver.Device.count():
            raise CosaEdgeError(f"CUDA device {device} does not exist; this machine has {driver.Device.count()}")
        self.driver = driver
        self.device = driver.Device(device)
        self.context = self.device.retain_primary_context()
        self.context.push()
        self.stream = driver.Stream()

    @property
    def device_name(self) -> str:
        return self.device.name()

    @property
    def compute_capability(self) -> tuple[int, int]:
        return tuple(self.device.compute_capability())  # type: ignore[return-value]

    def pinned(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        return self.driver.pagelocked_empty(shape, dtype)

    def device_buffer(self, nbytes: int) -> Any:
        return self.driver.mem_alloc(max(nbytes, 1))

    def event(self) -> Any:
        return self.driver.Event()

    def upload(self, device_buffer: Any, host: np.ndarray) -> None:
        self.driver.memcpy_htod_async(device_buffer, host, self.stream)

    def download(self, host: np.ndarray, device_buffer: Any) -> None:
        self.driver.memcpy_dtoh_async(host, device_buffer, self.stream)

    def close(self) -> None:
        self.stream.synchronize()
        self.context.pop()


def _pick_binding(name: str | None) -> _PycudaBinding | _CupyBinding:
    choices = {"pycuda": _PycudaBinding, "cupy": _CupyBinding}
    if name is not None:
        if name not in choices:
            raise CosaEdgeError(f"unknown CUDA binding {name!r}; use pycuda or cupy")
        order = [name]
    else:
        order = ["pycuda", "cupy"]
    problems = []
    for candidate in order:
        try:
            return choices[candidate]()
        except Exception as exc:  # ImportError, or the binding's own error when no GPU or driver is present
            problems.append(f"{candidate}: {exc}")
    raise CosaEdgeError("the CUDA region-mask kernel needs pycuda (pip install 'cosa-edge[tensorrt]') or CuPy "
                        "on a machine with an NVIDIA GPU; " + "; ".join(problems))


def launch_on_device(scores: Any, out: Any, cells: tuple[int, int], stream_handle: int) -> None:
    """Launch the kernel on device buffers that expose ``__cuda_array_interface__`` (TensorRT's plugin
    tensors do), on a foreign CUDA stream. Used by the plugin's Python implementation; needs CuPy."""
    from .._optional import require

    cupy = require("cupy")
    device_scores, device_out = cupy.asarray(scores), cupy.asarray(out)
    geometry = launch_geometry(tuple(device_scores.shape), cells)
    kernel = KERNEL_NAMES[np.dtype(device_scores.dtype)]
    module = _cupy_module(cupy)
    with cupy.cuda.ExternalStream(stream_handle):
        module.get_function(kernel)(geometry.grid, geometry.block, (device_scores, *geometry.scalar_args(), device_out))


_CUPY_MODULE: Any = None


def _cupy_module(cupy: Any) -> Any:
    global _CUPY_MODULE
    if _CUPY_MODULE is None:
        _CUPY_MODULE = cupy.RawModule(code=kernel_source(), options=("--std=c++17",))
    return _CUPY_MODULE
