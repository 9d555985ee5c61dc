"""What machine a benchmark ran on, so that numbers are never read without their context."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import shutil
import subprocess
from typing import Any

from ..hardware import cpu_class, cpu_features, describe_cpu_class


def _cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _gpus() -> list[str]:
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10, check=True).stdout
    except (subprocess.SubprocessError, OSError):
        return []
    return [line.strip() for line in out.splitlines() if line.strip()]


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def system_info() -> dict[str, Any]:
    packages = ["cosa-edge", "numpy", "opencv-python", "onnxruntime", "onnx", "torch", "tensorrt", "pycuda"]
    return {
        "cpu": _cpu_model(), "cpu_cores": os.cpu_count(), "machine": platform.machine(),
        # INT8 kernels, and so INT8 latency and accuracy, depend on these (cosa_edge.hardware).
        "cpu_class": cpu_class(), "cpu_flags": list(cpu_features()),
        "os": f"{platform.system()} {platform.release()}", "python": platform.python_version(),
        "gpus": _gpus(), "libraries": {p: v for p in packages if (v := _version(p))},
    }


def cpu_class_text(system: dict[str, Any]) -> str:
    """The CPU class of a system record in words ("AVX2 without VNNI"), for a report's first lines."""
    return describe_cpu_class(system["cpu_class"]) if system.get("cpu_class") else "CPU class not recorded"
