"""Engines: the runtime side, one class per runtime behind one interface, and never torch.

Each runtime module (``onnxruntime_engine``, ``tensorrt_engine``, ``openvino_engine``) holds its engine class,
its builder and its :class:`Runtime` record; :mod:`.runtimes` gathers the records, and files are opened with
:func:`cosa_edge.backends.open_engine` (which also opens the training side's PyTorch checkpoints) or, on the
deploy side, with ``runtime_for(path).open(path)``. Nothing under cosa_edge.engines imports cosa_edge.export,
train or model (tests/test_imports.py checks it).
"""

from __future__ import annotations

from pathlib import Path

from ..errors import CosaEdgeError
from .base import Engine, Runtime, TensorSpec
from .runtimes import RUNTIMES, engine_files, runtime_for, runtime_named


def existing_engine_file(path: str | Path) -> Path:
    """``path`` as a Path, or one clear error when there is no such file."""
    path = Path(path)
    if not path.is_file():
        raise CosaEdgeError(f"engine {path} does not exist")
    return path


__all__ = ["RUNTIMES", "Engine", "Runtime", "TensorSpec", "engine_files", "existing_engine_file", "runtime_for",
           "runtime_named"]
