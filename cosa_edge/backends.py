"""Open any engine file, the PyTorch checkpoint included: the one place that sees both sides.

cosa_edge.engines (the runtime side) must not import the training side, so it
cannot open a .pt checkpoint; cosa_edge.export holds the PyTorch reference
engine. This module sits above both and dispatches: .pt to the export side's
:class:`~cosa_edge.export.torch_engine.TorchEngine` (imported only then, so
opening an .onnx or .engine file here still loads no torch), everything else
to :func:`cosa_edge.engines.open_engine`. The CLI and the demo open engines
through it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from . import engines
from .engines import BACKENDS, Engine, backend_for


def open_engine(path: str | Path, backend: str | None = None, **options: Any) -> Engine:
    """Load an engine file of any backend (.onnx, .engine/.plan, .pt); ``backend`` overrides the suffix."""
    backend = backend or backend_for(Path(path))
    if backend != "torch":
        return engines.open_engine(path, backend=backend, **options)
    path = engines.existing_engine_file(path)
    from .export.torch_engine import TorchEngine

    return TorchEngine(path, **options)


__all__ = ["BACKENDS", "backend_for", "open_engine"]
