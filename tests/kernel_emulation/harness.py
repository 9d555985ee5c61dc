"""Compile cosa_masks.cu with g++ against the CUDA stand-ins in this folder, and run it on the CPU.

Builds are cached in a directory keyed by a hash of every source and flag (the kernel text, the
headers, the launcher, g++'s version), so a rerun, or a second pytest process, compiles nothing.
The launcher is compiled once per flag set and only the (small) kernel once per variant, which
keeps mutation tests cheap.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Callable, Literal

import numpy as np

from cosa_edge.kernels.cuda import kernel_source  # the text that nvcc compiles in production

HERE = Path(__file__).resolve().parent
INCLUDE = HERE / "include"
LAUNCHER = HERE / "launcher.cpp"
DRIVER = HERE / "driver.cpp"

Order = Literal["forward", "reverse"]
Mode = Literal["fibers", "threads"]
Sanitizer = Literal["address", "thread"]

BASE_FLAGS: tuple[str, ...] = ("-std=c++20", "-O1", "-fPIC", "-pthread", "-fvisibility=hidden")
SANITIZER_FLAGS: dict[str, tuple[str, ...]] = {
    # UBSan aborts on the first finding instead of printing and going on.
    "address": ("-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer", "-g"),
    "thread": ("-fsanitize=thread", "-g"),
}
SANITIZER_ENV: dict[str, dict[str, str]] = {
    "address": {"ASAN_OPTIONS": "halt_on_error=1:detect_leaks=1", "UBSAN_OPTIONS": "print_stacktrace=1"},
    "thread": {"TSAN_OPTIONS": "halt_on_error=1:exitcode=66"},
}
_ORDERS = {"forward": 0, "reverse": 1}
_MODES = {"fibers": 0, "threads": 1}
# A library's launcher state and the kernel's static "shared memory" are process-wide: one launch at a time.
_LAUNCH_LOCK = threading.Lock()


class KernelLaunchError(RuntimeError):
    """The emulated launch failed: a barrier mismatch, a bad block shape, or a sanitizer finding."""


def gxx() -> str | None:
    return shutil.which("g++")


def cache_dir() -> Path:
    root = os.environ.get("COSA_EDGE_EMULATION_CACHE") or Path(tempfile.gettempdir()) / "cosa-edge-kernel-emulation"
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _compiler() -> str:
    compiler = gxx()
    if compiler is None:
        raise FileNotFoundError("g++ is not on PATH: it compiles the CPU emulation of the CUDA kernel")
    return compiler


@functools.lru_cache(maxsize=None)
def _compiler_id() -> str:
    """Part of every cache key: another g++ gives other objects."""
    version = subprocess.run([_compiler(), "--version"], capture_output=True, text=True, check=True).stdout
    return f"{_compiler()}\n{version}"


def _digest(*parts: str | bytes) -> str:
    sha = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        sha.update(len(data).to_bytes(8, "little") + data)
    return sha.hexdigest()[:24]


def _headers() -> str:
    return "".join(p.read_text(encoding="utf-8") for p in sorted(INCLUDE.iterdir()))


def _cached(name: str, key: str, build: Callable[[Path], None]) -> Path:
    """Path of cache entry ``key/name``, built with ``build(tmp_path)`` if absent. The build writes a
    temporary name and renames it, so that concurrent test processes never see half a file."""
    target = cache_dir() / key / name
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{name}.{os.getpid()}.tmp")
        build(tmp)
        os.replace(tmp, target)
    return target


def _gxx(args: list[str], output: Path) -> None:
    result = subprocess.run([_compiler(), *args, "-o", str(output)],
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise KernelLaunchError(f"g++ failed:\n{result.stderr.strip()}")


def _object(source_text: str, source_name: str, flags: tuple[str, ...], kernel: bool) -> Path:
    key = _digest(_compiler_id(), " ".join(flags), _headers(), source_text, str(kernel))

    def build(out: Path) -> None:
        # The source is kept beside its object, so that diagnostics point at a readable file (a
        # mutant's text, say). Every writer writes the same text, so the rename race is harmless.
        source = out.with_name(source_name)
        scratch = out.with_name(f".{source_name}.{os.getpid()}.tmp")
        scratch.write_text(source_text, encoding="utf-8")
        os.replace(scratch, source)
        # The kernel is CUDA source: compile it as C++, with the stand-ins force-included and
        # <cuda_fp16.h> found in INCLUDE.
        language = ["-x", "c++", "-include", "cuda_emulation.h"] if kernel else []
        _gxx([*flags, "-I", str(INCLUDE), *language, "-c", str(source)], out)

    return _cached(source_name + ".o", key, build)


def build(source: str | None = None, sanitizer: Sanitizer | None = None) -> Path:
    """Compile and link: a shared library for ctypes (no sanitizer), or the driver executable."""
    flags = BASE_FLAGS + (SANITIZER_FLAGS[sanitizer] if sanitizer else ())
    objects = [_object(source if source is not None else kernel_source(), "kernel.cu", flags, kernel=True),
               _object(LAUNCHER.read_text(encoding="utf-8"), "launcher.cpp", flags, kernel=False)]
    if sanitizer:
        objects.append(_object(DRIVER.read_text(encoding="utf-8"), "driver.cpp", flags, kernel=False))
    name = f"driver-{sanitizer}" if sanitizer else "libemulation.so"
    link = [*flags] if sanitizer else [*flags, "-shared"]
    key = _digest(*(str(o) for o in objects), " ".join(link))
    return _cached(name, key, lambda out: _gxx([*link, *map(str, objects)], out))


@functools.lru_cache(maxsize=None)
def _library(path: Path) -> ctypes.CDLL:
    lib = ctypes.CDLL(str(path))
    lib.emu_region_masks.restype = ctypes.c_int
    lib.emu_region_masks.argtypes = [ctypes.c_int, ctypes.c_void_p, *[ctypes.c_int] * 5, ctypes.c_void_p,
                                     *[ctypes.c_int] * 5, ctypes.c_char_p, ctypes.c_int]
    lib.emu_half2float.restype = None
    lib.emu_half2float.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int]
    return lib


def half2float(bits: np.ndarray) -> np.ndarray:
    """The emulated ``__half2float`` applied to uint16 bit patterns."""
    bits = np.ascontiguousarray(bits, dtype=np.uint16)
    out = np.empty(bits.shape, np.float32)
    _library(build()).emu_half2float(bits.ctypes.data, out.ctypes.data, bits.size)
    return out


def run(scores: np.ndarray, cells: tuple[int, int], block: tuple[int, int, int] = (16, 16, 1),
        order: Order = "forward", mode: Mode = "fibers", source: str | None = None,
        sanitizer: Sanitizer | None = None) -> np.ndarray:
    """Launch cosa_region_masks_{f32,f16} on the CPU, grid (w, h, N), one block per output cell.

    scores: float32 or float16 (N, 2, H, W); float16 goes in as its raw bits. ``source`` replaces
    the kernel's text (mutation tests). ``order`` is the fibers' run order; threads run as the OS
    schedules them. ``sanitizer`` (threads mode only) runs the driver executable in a subprocess.
    Returns float32 (N, 3, h, w); cells the kernel does not write stay NaN.
    """
    scores = np.ascontiguousarray(scores)
    if scores.dtype not in (np.float32, np.float16) or scores.ndim != 4 or scores.shape[1] != 2:
        raise ValueError(f"scores must be float32 or float16 (N, 2, H, W), not {scores.dtype} {scores.shape}")
    if mode == "threads" and order != "forward":
        raise ValueError("thread order is a fibers-mode setting; threads run as the OS schedules them")
    if sanitizer is not None and mode != "threads":
        raise ValueError("sanitizers run in threads mode (they do not follow swapcontext)")
    n, _, height, width = scores.shape
    h, w = cells
    half = int(scores.dtype == np.float16)
    raw = scores.view(np.uint16) if half else scores
    out = np.full((n, 3, h, w), np.nan, np.float32)
    args = (n, height, width, h, w)
    if sanitizer is None:
        library, error = _library(build(source)), ctypes.create_string_buffer(512)
        with _LAUNCH_LOCK:
            rc = library.emu_region_masks(half, raw.ctypes.data, *args, out.ctypes.data, *block,
                                          _ORDERS[order], _MODES[mode], error, len(error))
        if rc != 0:
            raise KernelLaunchError(error.value.decode())
        return out
    driver = build(source, sanitizer)
    with tempfile.TemporaryDirectory() as tmp:
        scores_path, out_path = Path(tmp) / "scores.bin", Path(tmp) / "out.bin"
        raw.tofile(scores_path)
        command = [str(driver), str(half), *map(str, args), *map(str, block), "0", "1", str(scores_path),
                   str(out_path)]
        result = subprocess.run(command, capture_output=True, text=True, check=False,
                                env={**os.environ, **SANITIZER_ENV[sanitizer]}, timeout=120)
        if result.returncode != 0:
            raise KernelLaunchError(f"{sanitizer} sanitizer run exited {result.returncode}:\n{result.stderr.strip()}")
        return np.fromfile(out_path, np.float32).reshape(out.shape)


@functools.lru_cache(maxsize=None)
def sanitizer_unavailable(sanitizer: Sanitizer) -> str | None:
    """None if g++ can build and run a trivial threaded program with ``sanitizer``, else why not."""
    if gxx() is None:
        return "g++ is not on PATH"
    with tempfile.TemporaryDirectory() as tmp:
        source, binary = Path(tmp) / "probe.cpp", Path(tmp) / "probe"
        source.write_text("#include <thread>\nint main() { std::thread([] {}).join(); }\n", encoding="utf-8")
        flags = [*BASE_FLAGS, *SANITIZER_FLAGS[sanitizer]]
        built = subprocess.run([gxx(), *flags, str(source), "-o", str(binary)], capture_output=True, text=True)
        if built.returncode != 0:
            return (f"g++ cannot build with {SANITIZER_FLAGS[sanitizer][0]} (sanitizer runtime missing?): "
                    f"{built.stderr.strip()[-300:]}")
        ran = subprocess.run([str(binary)], capture_output=True, text=True,
                             env={**os.environ, **SANITIZER_ENV[sanitizer]})
        if ran.returncode != 0:
            return f"a trivial {sanitizer}-sanitized program fails to run here: {ran.stderr.strip()[-300:]}"
    return None
