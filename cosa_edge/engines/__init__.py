"""Engines: the runtime side, one class per runtime behind one interface, and never torch.

``open_engine(path)`` opens a runtime engine, picking the backend from the file
type (.onnx: ONNX Runtime, .engine/.plan: TensorRT, .xml: OpenVINO), or ``backend=`` overrides
it. A PyTorch checkpoint (.pt) is the training side's and is not opened here:
:func:`cosa_edge.backends.open_engine` opens every kind, .pt included, and is
what the CLI uses. Nothing under cosa_edge.engines imports cosa_edge.export,
train or model (tests/test_imports.py checks it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import CosaEdgeError
from .base import Engine, TensorSpec

#: The runtimes this package opens.
RUNTIME_BACKENDS = ("onnxruntime", "tensorrt", "openvino")
#: Every backend name a file can map to; "torch" is opened by cosa_edge.backends.
BACKENDS = (*RUNTIME_BACKENDS, "torch")
_BY_SUFFIX = {".onnx": "onnxruntime", ".ort": "onnxruntime", ".engine": "tensorrt", ".plan": "tensorrt",
              ".trt": "tensorrt", ".xml": "openvino", ".pt": "torch", ".pth": "torch"}


def backend_for(path: Path) -> str:
    backend = _BY_SUFFIX.get(Path(path).suffix.lower())
    if backend is None:
        raise CosaEdgeError(f"cannot tell the runtime of {path} from its suffix; use .onnx, .engine, .xml or .pt, "
                            f"or pass --backend ({', '.join(BACKENDS)})")
    return backend


def engine_files(path: str | Path) -> list[Path]:
    """An engine and the files that travel with it: a TensorRT or OpenVINO sidecar (NAME.json beside NAME),
    OpenVINO's weights (NAME.bin)."""
    path = Path(path)
    suffix = path.suffix.lower()
    files = [path]
    if suffix in (".engine", ".plan", ".trt", ".xml"):
        files.append(Path(str(path) + ".json"))
    if suffix == ".xml":
        files.append(path.with_suffix(".bin"))
    return files


def existing_engine_file(path: str | Path) -> Path:
    """``path`` as a Path, or one clear error when there is no such file."""
    path = Path(path)
    if not path.is_file():
        raise CosaEdgeError(f"engine {path} does not exist")
    return path


def open_engine(path: str | Path, backend: str | None = None, **options: Any) -> Engine:
    """Load a runtime engine file; its metadata is checked, and a wrong file gives one clear error."""
    backend = backend or backend_for(Path(path))
    path = existing_engine_file(path)
    if backend == "onnxruntime":
        from .onnxruntime_engine import OnnxRuntimeEngine

        return OnnxRuntimeEngine(path, **options)
    if backend == "tensorrt":
        from .tensorrt_engine import TensorRTEngine

        return TensorRTEngine(path, **options)
    if backend == "openvino":
        from .openvino_engine import OpenVinoEngine

        return OpenVinoEngine(path, **options)
    if backend == "torch":
        raise CosaEdgeError(f"{path} is a PyTorch checkpoint, which cosa_edge.engines (the torch-free runtime side) "
                            "does not open; use cosa_edge.backends.open_engine")
    raise CosaEdgeError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")


__all__ = ["BACKENDS", "Engine", "RUNTIME_BACKENDS", "TensorSpec", "backend_for", "engine_files", "existing_engine_file",
           "open_engine"]
