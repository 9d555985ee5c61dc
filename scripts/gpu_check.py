#!/usr/bin/env python3
"""The one prepared GPU check: run it on any machine with an NVIDIA GPU, then put its results in docs.

    python3 scripts/gpu_check.py [--out gpu_check.json] [--skip-training]

Needs PyTorch with CUDA, CuPy, cuda-python (``cuda.bindings``), nvcc and numpy/OpenCV; not
TensorRT, not pycuda, not a package index, not an installed cosa-edge (it imports the package from
this checkout). Prints one JSON summary and exits non-zero if any check failed. Runs in about a
minute; each section reports on its own, so one failure does not hide the others.

Sections:
  environment   GPU, compute capability, driver CUDA version (two ways), nvcc, PTX ISA versions
  cupy          the kernel through CuPy (NVRTC-compiled source) against the numpy reference
  driver_api    the nvcc PTX loaded with cuModuleLoadData and launched with cuLaunchKernel with the
                arguments in the AOT plugin's order (scores, H, W, h, w, out) and its grid and block,
                fp32 and fp16; also other block shapes, and the PTX lowered for older drivers
  plugin_impl   the plugin's Python implementation (launch_on_device) on torch tensors and stream
  timing        the kernel against the PyTorch region op (cosa_edge.model.regions) on the GPU
  training      one CUDA epoch of cosa-edge's own train() with AMP, on phantoms
  ddp           the same through a one-process NCCL process group (DistributedDataParallel)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Callable

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from cosa_edge.kernels import cuda as kernels  # noqa: E402
from cosa_edge.kernels.reference import region_maps as reference_maps  # noqa: E402


def _inputs(rng: np.random.Generator) -> list[tuple[str, np.ndarray, tuple[int, int]]]:
    """Scores of every kind the kernel must get exactly right, as (name, float32 (N, 2, H, W), cells)."""
    import cv2

    def smooth(n: int, h: int, w: int, sigma: float) -> np.ndarray:
        noise = rng.standard_normal((n, 2, h, w)).astype(np.float32)
        return np.stack([np.stack([cv2.GaussianBlur(c, (0, 0), sigma) for c in s]) for s in noise])

    empty = np.zeros((1, 2, 64, 64), np.float32)
    empty[:, 0] = 1.0
    full = np.zeros((1, 2, 64, 64), np.float32)
    full[:, 1] = 1.0
    ties = np.zeros((1, 2, 64, 64), np.float32)  # equal scores everywhere: background
    pixel = empty.copy()
    pixel[0, 1, 31, 17] = 2.0
    border = empty.copy()
    border[0, 1, :20, :25] = 2.0  # touches the top-left corner
    return [
        ("crafted", np.concatenate([empty, full, ties, pixel, border]), (8, 8)),
        ("smooth_256_tile32", smooth(4, 256, 256, 6.0), (8, 8)),
        ("noise_256_tile8", rng.standard_normal((2, 2, 256, 256)).astype(np.float32), (32, 32)),
        ("smooth_96x160_tile8", smooth(2, 96, 160, 3.0), (12, 20)),
        ("smooth_tile1", smooth(1, 32, 48, 2.0), (32, 48)),
        ("smooth_tile3", smooth(1, 48, 60, 2.0), (16, 20)),
        ("smooth_tile64", smooth(2, 128, 192, 8.0), (2, 3)),
        ("smooth_tile8x16", smooth(2, 64, 128, 3.0), (8, 8)),
    ]


def _fp16_near_ties(rng: np.random.Generator) -> np.ndarray:
    """Scores whose two channels differ by one FP16 step or are equal after rounding to FP16."""
    base = rng.uniform(-4, 4, (2, 1, 64, 64)).astype(np.float16)
    step = np.nextafter(base, np.float16(np.inf))
    choice = rng.integers(0, 3, base.shape)
    other = np.where(choice == 0, base, np.where(choice == 1, step, np.nextafter(base, np.float16(-np.inf))))
    return np.concatenate([base, other], axis=1)


def _compare(name: str, got: np.ndarray, expected: np.ndarray) -> dict[str, Any]:
    equal = got.shape == expected.shape and bool(np.array_equal(got, expected))
    result: dict[str, Any] = {"case": name, "exact": equal}
    if not equal and got.shape == expected.shape:
        result["cells_differing"] = int((got != expected).sum())
        result["max_abs_difference"] = float(np.abs(got - expected).max())
    return result


def check_environment() -> dict[str, Any]:
    info: dict[str, Any] = {"host": platform.node(), "python": platform.python_version()}
    info["driver_cuda_ctypes"] = ".".join(map(str, kernels.driver_cuda_version() or ()))
    try:
        smi = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                             capture_output=True, text=True, check=True, timeout=30)
        info["nvidia_smi"] = smi.stdout.strip()
    except (OSError, subprocess.SubprocessError) as exc:
        info["nvidia_smi"] = f"unavailable: {exc}"
    nvcc = subprocess.run(["nvcc", "--version"], capture_output=True, text=True, check=False)
    info["nvcc"] = nvcc.stdout.strip().splitlines()[-1] if nvcc.returncode == 0 else "missing"
    ptx = kernels.compile_ptx("compute_75")
    info["nvcc_ptx_isa"] = ".".join(map(str, kernels.ptx_isa_version(ptx)))
    loadable = kernels.compile_ptx_for_driver("compute_75")
    info["ptx_isa_for_this_driver"] = ".".join(map(str, kernels.ptx_isa_version(loadable)))
    import torch

    info["torch"] = torch.__version__
    info["torch_cuda"] = torch.version.cuda
    info["gpu"] = torch.cuda.get_device_name(0)
    info["compute_capability"] = ".".join(map(str, torch.cuda.get_device_capability(0)))
    try:
        import cupy

        info["cupy"] = cupy.__version__
    except ImportError:
        info["cupy"] = "missing"
    try:
        from cuda.bindings import driver as cu

        err, version = cu.cuDriverGetVersion()
        info["driver_cuda_cuda_python"] = f"{version // 1000}.{(version % 1000) // 10}"
    except ImportError:
        info["driver_cuda_cuda_python"] = "cuda-python missing"
    return info


def check_cupy(rng: np.random.Generator) -> dict[str, Any]:
    masks = kernels.CudaRegionMasks(binding="cupy")
    results = []
    for name, scores, cells in _inputs(rng):
        expected = reference_maps(scores, cells)
        results.append(_compare(f"{name}/fp32", masks(scores, cells), expected))
        half = scores.astype(np.float16)
        results.append(_compare(f"{name}/fp16", masks(half, cells), reference_maps(half.astype(np.float32), cells)))
    near = _fp16_near_ties(rng)
    results.append(_compare("fp16_near_ties", masks(near, (8, 8)), reference_maps(near.astype(np.float32), (8, 8))))
    return {"binding": masks.binding, "cases": results, "ok": all(r["exact"] for r in results)}


class DriverKernel:
    """The kernel's PTX through the raw CUDA driver API, launched as TensorRT's AOT plugin launches it."""

    def __init__(self, ptx: str) -> None:
        from cuda.bindings import driver as cu

        self.cu = cu
        self._call(cu.cuInit(0))
        device = self._call(cu.cuDeviceGet(0))
        self.context = self._call(cu.cuDevicePrimaryCtxRetain(device))
        self._call(cu.cuCtxSetCurrent(self.context))
        image = np.frombuffer(ptx.encode() + b"\0", dtype=np.uint8)
        self.module = self._call(cu.cuModuleLoadData(image.ctypes.data))
        self.functions = {dtype: self._call(cu.cuModuleGetFunction(self.module, name.encode()))
                          for dtype, name in kernels.KERNEL_NAMES.items()}

    def _call(self, result: Any) -> Any:
        err, *values = result if isinstance(result, tuple) else (result,)
        if int(err) != 0:
            _, name = self.cu.cuGetErrorName(err)
            raise RuntimeError(f"CUDA driver call failed: {name.decode() if isinstance(name, bytes) else name}")
        return values[0] if len(values) == 1 else values or None

    def launch(self, scores_ptr: int, out_ptr: int, shape: tuple[int, ...], cells: tuple[int, int],
               dtype: np.dtype, block: tuple[int, int, int], stream: int = 0) -> None:
        geometry = kernels.launch_geometry(shape, cells)
        # Parameter order as the AOT plugin passes them: inputs, the extra int32 scalars, outputs.
        values = [np.array([scores_ptr], np.uint64), *(np.array([v], np.int32) for v in geometry.scalar_args()),
                  np.array([out_ptr], np.uint64)]
        pointers = np.array([v.ctypes.data for v in values], np.uint64)
        self._call(self.cu.cuLaunchKernel(self.functions[np.dtype(dtype)], *geometry.grid, *block, 0,
                                          self.cu.CUstream(stream), pointers.ctypes.data, 0))

    def run(self, scores: np.ndarray, cells: tuple[int, int], block: tuple[int, int, int]) -> np.ndarray:
        cu = self.cu
        scores = np.ascontiguousarray(scores)
        out = np.full((scores.shape[0], 3, *cells), np.nan, np.float32)  # NaN: an unwritten cell shows
        d_scores = self._call(cu.cuMemAlloc(scores.nbytes))
        d_out = self._call(cu.cuMemAlloc(out.nbytes))
        try:
            self._call(cu.cuMemcpyHtoD(d_scores, scores.ctypes.data, scores.nbytes))
            self._call(cu.cuMemcpyHtoD(d_out, out.ctypes.data, out.nbytes))
            self.launch(int(d_scores), int(d_out), scores.shape, cells, scores.dtype, block)
            self._call(cu.cuCtxSynchronize())
            self._call(cu.cuMemcpyDtoH(out.ctypes.data, d_out, out.nbytes))
        finally:
            cu.cuMemFree(d_scores)
            cu.cuMemFree(d_out)
        return out


def check_driver_api(rng: np.random.Generator) -> dict[str, Any]:
    ptx = kernels.compile_ptx_for_driver("compute_75")
    kernel = DriverKernel(ptx)
    results = []
    for name, scores, cells in _inputs(rng):
        expected = reference_maps(scores, cells)
        results.append(_compare(f"{name}/fp32", kernel.run(scores, cells, kernels.BLOCK), expected))
        half = scores.astype(np.float16)
        results.append(_compare(f"{name}/fp16", kernel.run(half, cells, kernels.BLOCK),
                                reference_maps(half.astype(np.float32), cells)))
    near = _fp16_near_ties(rng)
    results.append(_compare("fp16_near_ties", kernel.run(near, (8, 8), kernels.BLOCK),
                            reference_maps(near.astype(np.float32), (8, 8))))
    _, smooth, cells = _inputs(rng)[1]
    expected = reference_maps(smooth, cells)
    for block in ((1, 1, 1), (2, 1, 1), (32, 1, 1), (7, 5, 1), (4, 4, 2), (32, 32, 1)):
        results.append(_compare(f"block{block}", kernel.run(smooth, cells, block), expected))
    lowered = {}
    for driver in ((11, 8), (12, 0), (12, 4)):
        older = kernels.make_loadable(kernels.compile_ptx("compute_75"), driver)
        isa = ".".join(map(str, kernels.ptx_isa_version(older)))
        result = _compare(f"ptx_isa_{isa}", DriverKernel(older).run(smooth, cells, kernels.BLOCK), expected)
        lowered[isa] = result["exact"]
        results.append(result)
    return {"ptx_isa": ".".join(map(str, kernels.ptx_isa_version(ptx))), "lowered_ptx_exact": lowered,
            "cases": results, "ok": all(r["exact"] for r in results)}


def check_plugin_impl(rng: np.random.Generator) -> dict[str, Any]:
    import torch

    _, smooth, cells = _inputs(rng)[1]
    results = []
    for dtype in (torch.float32, torch.float16):
        scores = torch.from_numpy(smooth).to("cuda", dtype)
        out = torch.full((scores.shape[0], 3, *cells), float("nan"), device="cuda")
        kernels.launch_on_device(scores, out, cells, torch.cuda.current_stream().cuda_stream)
        torch.cuda.synchronize()
        expected = reference_maps(scores.float().cpu().numpy(), cells)
        results.append(_compare(f"launch_on_device/{dtype}", out.cpu().numpy(), expected))
    return {"cases": results, "ok": all(r["exact"] for r in results)}


def _time_cuda(fn: Callable[[], Any], warmup: int = 10, iterations: int = 50) -> tuple[float, float]:
    """(device microseconds per call, host microseconds per call).

    Device time: a sleep kernel holds the stream while every call is queued behind it, so the
    events around the calls time the GPU's work alone, not Python's launch overhead. Host time:
    the same calls back to back, synchronised at the end (what a caller waits for).
    """
    import torch

    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda._sleep(200_000_000)  # ~0.1 s at GPU clocks: longer than queueing the calls takes
    start.record()
    for _ in range(iterations):
        fn()
    stop.record()
    stop.synchronize()
    device_us = start.elapsed_time(stop) * 1e3 / iterations
    started = time.perf_counter()
    for _ in range(iterations):
        fn()
    torch.cuda.synchronize()
    host_us = (time.perf_counter() - started) * 1e6 / iterations
    return device_us, host_us


def check_timing(rng: np.random.Generator) -> dict[str, Any]:
    import torch

    from cosa_edge.model.regions import region_maps as torch_region_maps

    kernel = DriverKernel(kernels.compile_ptx_for_driver("compute_75"))
    rows = []
    for batch, size in ((1, 256), (8, 256), (32, 256), (8, 512)):
        cells = (size // 32, size // 32)  # the C5 grid of a stride-32 encoder
        blurred = _inputs(rng)[1][1]
        scores32 = torch.from_numpy(np.resize(blurred, (batch, 2, size, size))).cuda()
        out = torch.empty((batch, 3, *cells), device="cuda")
        stream = torch.cuda.current_stream().cuda_stream
        row: dict[str, Any] = {"batch": batch, "size": size, "cells": list(cells)}
        for label, scores in (("fp32", scores32), ("fp16", scores32.half())):
            dtype = np.float16 if label == "fp16" else np.float32
            kernel_device, kernel_host = _time_cuda(lambda s=scores, d=dtype, o=out, c=cells, st=stream: kernel.launch(
                s.data_ptr(), o.data_ptr(), tuple(s.shape), c, d, kernels.BLOCK, st))
            with torch.no_grad():
                torch_device, torch_host = _time_cuda(lambda s=scores, c=cells: torch_region_maps(s, c))
            row[f"{label}_device_us"] = {"kernel": round(kernel_device, 1), "torch": round(torch_device, 1),
                                         "torch_over_kernel": round(torch_device / kernel_device, 1)}
            row[f"{label}_host_us"] = {"kernel": round(kernel_host, 1), "torch": round(torch_host, 1)}
        kernel.launch(scores32.data_ptr(), out.data_ptr(), tuple(scores32.shape), cells, np.float32, kernels.BLOCK,
                      stream)
        torch.cuda.synchronize()
        row["kernel_equals_torch_op"] = bool(torch.equal(out, torch_region_maps(scores32, cells)))
        rows.append(row)
    return {"method": "10 warm-up calls; device: CUDA events around 50 calls queued behind a sleep kernel; "
                      "host: wall clock over 50 back-to-back calls and a synchronise; kernel launched with "
                      "cuLaunchKernel (cuda-python), torch op as in the model",
            "rows": rows, "ok": all(r["kernel_equals_torch_op"] for r in rows)}


def _train_once(run_dir: Path, ctx: Any = None) -> dict[str, Any]:
    from cosa_edge.config import load_preset
    from cosa_edge.data.phantom import make_phantom_dataset
    from cosa_edge.train.loop import train

    config = load_preset("edge").replace(image_size=128, epochs=1, batch_size=8, val_fraction=0.0, device="cuda",
                                         amp=True, save_every=100, num_workers=0)
    samples = make_phantom_dataset(32, seed=5, size=(128, 128))
    started = time.perf_counter()
    train(config, samples, run_dir, progress=False, ctx=ctx)
    log = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    loss = log[-1].get("loss")
    return {"epochs": len(log), "loss": loss, "finite": bool(loss is not None and np.isfinite(loss)),
            "seconds": round(time.perf_counter() - started, 1), "amp": config.amp}


def check_training() -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        result = _train_once(Path(tmp) / "run")
    return {**result, "ok": result["finite"]}


def check_ddp() -> dict[str, Any]:
    import torch.distributed as dist

    from cosa_edge.train.distributed import init_distributed, shutdown_distributed

    with socket.socket() as probe:  # a free port for the rendezvous
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    os.environ.update({"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1",
                       "MASTER_PORT": str(port)})
    try:
        ctx = init_distributed("cuda")
        backend = dist.get_backend()
        with tempfile.TemporaryDirectory() as tmp:
            result = _train_once(Path(tmp) / "run", ctx=ctx)
    finally:
        shutdown_distributed()
        for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
            os.environ.pop(key, None)
    return {**result, "backend": backend, "ok": result["finite"] and backend == "nccl"}


def _section(fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        result = fn()
    except Exception as exc:  # every section reports, whatever another one did
        result = {"ok": False, "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc(limit=6)}
    result["seconds"] = round(time.perf_counter() - started, 1)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="also write the JSON summary to this file")
    parser.add_argument("--skip-training", action="store_true", help="leave out the AMP and DDP training checks")
    args = parser.parse_args()
    rng = np.random.default_rng(2026)
    summary: dict[str, Any] = {"check": "cosa-edge GPU check",
                               "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    summary["environment"] = _section(check_environment)
    summary["cupy"] = _section(lambda: check_cupy(rng))
    summary["driver_api"] = _section(lambda: check_driver_api(rng))
    summary["plugin_impl"] = _section(lambda: check_plugin_impl(rng))
    summary["timing"] = _section(lambda: check_timing(rng))
    if not args.skip_training:
        summary["training"] = _section(check_training)
        summary["ddp"] = _section(check_ddp)
    failed = [name for name, value in summary.items() if isinstance(value, dict) and value.get("ok") is False]
    summary["failed"] = failed
    text = json.dumps(summary, indent=2, default=str)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
