"""Every CUDA call of cosa-edge lives here, so that the binding can change in one place.

The fused region-mask kernel (``cosa_masks.cu``) is compiled to PTX by nvcc and
launched through pycuda, the project's CUDA binding; where pycuda is absent but
CuPy is present (CuPy compiles the same source with NVRTC), CuPy launches it.
"""

from __future__ import annotations

import shutil
import subprocess
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
    """Compile the kernel to PTX with nvcc. PTX for an older virtual architecture runs on newer GPUs."""
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
        self._module = driver.module_from_buffer(compile_ptx(f"compute_{major}{minor}").encode())
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
