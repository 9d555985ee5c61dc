"""The runtimes of the deploy side, gathered: each runtime module declares its own :class:`~.base.Runtime`
record, and everything else looks a runtime up here instead of naming it (as segmentation_models_pytorch gathers
its encoder families). The PyTorch reference engine is the training side's; cosa_edge.backends adds its record.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import CosaEdgeError
from . import onnxruntime_engine, openvino_engine, tensorrt_engine
from .base import Runtime

ONNXRUNTIME = onnxruntime_engine.RUNTIME
TENSORRT = tensorrt_engine.RUNTIME
OPENVINO = openvino_engine.RUNTIME

#: Every runtime the deploy side opens and builds for, by name; the first is the default target for GPUs.
RUNTIMES: dict[str, Runtime] = {runtime.name: runtime for runtime in (TENSORRT, ONNXRUNTIME, OPENVINO)}


def runtime_named(name: str, table: dict[str, Runtime] = RUNTIMES) -> Runtime:
    try:
        return table[name]
    except KeyError:
        raise CosaEdgeError(f"unknown backend {name!r}; choose one of {', '.join(table)}") from None


def runtime_for(path: str | Path, table: dict[str, Runtime] = RUNTIMES) -> Runtime:
    """The runtime whose engines have ``path``'s suffix."""
    suffix = Path(path).suffix.lower()
    for runtime in table.values():
        if suffix in runtime.suffixes:
            return runtime
    known = ", ".join(f"{s} ({r.label})" for r in table.values() for s in r.suffixes)
    raise CosaEdgeError(f"cannot tell the runtime of {path} from its suffix; use one of {known}, "
                        f"or pass --backend ({', '.join(table)})")


def engine_files(path: str | Path) -> list[Path]:
    """An engine and the files that travel with it (sidecar, weights); just the file for an unknown suffix."""
    try:
        return runtime_for(path).files(path)
    except CosaEdgeError:
        return [Path(path)]


def default_target() -> str:
    """TensorRT where it and pycuda are installed, ONNX Runtime everywhere else."""
    return ONNXRUNTIME.name if tensorrt_engine.missing_modules() else TENSORRT.name
