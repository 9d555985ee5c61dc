"""Engines: one class per runtime behind one interface; no torch unless the torch backend is asked for.

``open_engine(path)`` picks the backend from the file type (.onnx: ONNX Runtime,
.engine/.plan: TensorRT, .pt: PyTorch eager), or ``backend=`` overrides it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import CosaEdgeError
from .base import Engine, TensorSpec
from .metadata import CLASS_OUTPUT, CONTRACT, INPUT_NAME, LESION_OUTPUT, ModelMetadata

BACKENDS = ("onnxruntime", "tensorrt", "torch")
_BY_SUFFIX = {".onnx": "onnxruntime", ".ort": "onnxruntime", ".engine": "tensorrt", ".plan": "tensorrt",
              ".trt": "tensorrt", ".pt": "torch", ".pth": "torch"}


def backend_for(path: Path) -> str:
    backend = _BY_SUFFIX.get(Path(path).suffix.lower())
    if backend is None:
        raise CosaEdgeError(f"cannot tell the runtime of {path} from its suffix; use .onnx, .engine or .pt, "
                            f"or pass --backend ({', '.join(BACKENDS)})")
    return backend


def open_engine(path: str | Path, backend: str | None = None, **options: Any) -> Engine:
    """Load an engine file; its metadata is checked, and a wrong file gives one clear error."""
    path = Path(path)
    backend = backend or backend_for(path)
    if not path.is_file():
        raise CosaEdgeError(f"engine {path} does not exist")
    if backend == "onnxruntime":
        from .onnxruntime_engine import OnnxRuntimeEngine

        return OnnxRuntimeEngine(path, **options)
    if backend == "tensorrt":
        from .tensorrt_engine import TensorRTEngine

        return TensorRTEngine(path, **options)
    if backend == "torch":
        from .torch_engine import TorchEngine

        return TorchEngine(path, **options)
    raise CosaEdgeError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")


__all__ = ["BACKENDS", "CLASS_OUTPUT", "CONTRACT", "Engine", "INPUT_NAME", "LESION_OUTPUT", "ModelMetadata",
           "TensorSpec", "backend_for", "open_engine"]
