"""Open any engine file, the PyTorch checkpoint included: the one place that sees both sides.

cosa_edge.engines (the runtime side) must not import the training side, so its table of runtimes
(engines/runtimes.py) holds the three deploy runtimes; the PyTorch reference engine's record is declared
on the export side (export/torch_engine.py, which loads torch only when an engine is opened) and joins
them here, in :data:`RUNTIMES`. The CLI and the demo open every engine through :func:`open_engine`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from . import engines
from .engines import Engine, Runtime
from .engines.runtimes import runtime_for, runtime_named
from .export.torch_engine import RUNTIME as TORCH

#: Every runtime cosa-edge opens, by name: the deploy side's and PyTorch's.
RUNTIMES: dict[str, Runtime] = {**engines.RUNTIMES, TORCH.name: TORCH}
BACKENDS = tuple(RUNTIMES)


def runtime_of(path: str | Path, backend: str | None = None) -> Runtime:
    """The runtime named by ``backend``, else the one whose engines have ``path``'s suffix."""
    return runtime_named(backend, RUNTIMES) if backend else runtime_for(path, RUNTIMES)


def backend_for(path: str | Path) -> str:
    return runtime_of(path).name


def open_engine(path: str | Path, backend: str | None = None, threads: int | None = None, **options: Any) -> Engine:
    """Load an engine file of any runtime (.onnx, .engine/.plan, .xml, .pt); ``backend`` overrides the suffix.
    ``threads`` reaches the runtimes that run on CPU threads (a TensorRT engine has no thread setting). Its
    metadata is checked, and a wrong file gives one clear error."""
    runtime = runtime_of(path, backend)
    if threads and runtime.takes_threads:
        options["threads"] = threads
    return runtime.open(engines.existing_engine_file(path), **options)


__all__ = ["BACKENDS", "RUNTIMES", "TORCH", "backend_for", "open_engine", "runtime_of"]
