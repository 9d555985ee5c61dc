"""Which CPU this is, in the terms that decide how 8-bit kernels compute.

ONNX Runtime's x86 INT8 kernels differ by CPU class: with VNNI (AVX-512 VNNI or AVX-VNNI) an 8-bit
product is summed straight into 32 bits; on AVX2 without VNNI the default U8S8 kernel sums pairs in
saturating 16 bits first, so the same INT8 model can give other numbers on another CPU. An engine
records the class its accuracy check ran on, and a bench report the CPU's flags.

The flags come from numpy's CPUID probe, not /proc/cpuinfo: under an emulator (QEMU's user mode with
``-cpu EPYC-Milan``, the AVX2 machine the tests emulate) /proc/cpuinfo shows the host's flags, while
CPUID is what the emulated program, and ONNX Runtime in it, actually sees.
"""

from __future__ import annotations

import functools
import os
import platform

AVX512_VNNI, AVX_VNNI, AVX2, X86_OLDER = "avx512_vnni", "avx_vnni", "avx2", "x86-64 without AVX2"

#: In words, for messages and reports.
DESCRIPTIONS = {AVX512_VNNI: "AVX-512 with VNNI", AVX_VNNI: "AVX-VNNI (no AVX-512 VNNI)", AVX2: "AVX2 without VNNI",
                X86_OLDER: "x86-64 without AVX2"}


@functools.cache
def cpu_features() -> tuple[str, ...]:
    """The instruction-set extensions this process can use, as numpy's CPUID probe names them (sorted)."""
    try:
        from numpy._core._multiarray_umath import __cpu_features__ as features
    except ImportError:  # numpy 1.x
        from numpy.core._multiarray_umath import __cpu_features__ as features
    return tuple(sorted(name for name, present in features.items() if present))


def _proc_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


@functools.cache
def cpu_class() -> str:
    """avx512_vnni, avx_vnni, avx2 or "x86-64 without AVX2" on x86; the machine's name (arm64, aarch64) elsewhere."""
    features = set(cpu_features())
    if not features & {"SSE2", "AVX2"}:
        return platform.machine().lower() or "unknown"
    if "AVX512VNNI" in features:
        return AVX512_VNNI
    # numpy has no name for AVX-VNNI (VEX-coded, on CPUs without AVX-512), so the kernel's flags decide it, but
    # only where they agree with CPUID about AVX-512: an emulator's /proc/cpuinfo describes the host instead.
    flags = _proc_flags()
    if "avx_vnni" in flags and ("avx512f" in flags) == ("AVX512F" in features):
        return AVX_VNNI
    return AVX2 if "AVX2" in features else X86_OLDER


def describe_cpu_class(name: str) -> str:
    return DESCRIPTIONS.get(name, name)


#: OpenMP's and MKL's dynamic adjustment of thread counts, which would let a run use fewer threads than it set.
DYNAMIC_THREADING_VARIABLES = ("OMP_DYNAMIC", "MKL_DYNAMIC")


def available_cpus() -> int:
    """The CPUs this process may run on (its affinity), not all the machine's."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS and Windows have no affinity call
        return os.cpu_count() or 1


def switch_off_dynamic_threading() -> None:
    """For a program's entry point, before torch loads: OpenMP and MKL keep the thread counts training sets, so
    that a run's float sums, and its weights, are the same each time. A user's own setting of either stands."""
    for name in DYNAMIC_THREADING_VARIABLES:
        os.environ.setdefault(name, "FALSE")
