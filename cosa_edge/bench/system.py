"""What machine a benchmark ran on, so that numbers are never read without their context."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import shutil
import subprocess
from typing import Any


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
        "os": f"{platform.system()} {platform.release()}", "python": platform.python_version(),
        "gpus": _gpus(), "libraries": {p: v for p in packages if (v := _version(p))},
    }
