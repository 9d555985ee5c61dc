"""`cosa-edge build-engine`: an exported ONNX model -> an engine for one runtime, checked before it replaces
anything.

:func:`build_engine` is the one way every engine is built, whatever its runtime and precision: built in a staging
folder beside the destination, checked there, and only then moved into place with its sidecars, so that a build
or a check that fails leaves whatever was at the destination as it was. How each runtime builds is its own
module's (``build`` of its :class:`~.base.Runtime` record); the steps every build shares are in
:mod:`.build_steps`; INT8 engines are calibrated and checked by :mod:`.quantized_build` inside the same staging.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..data import Sample
from ..errors import CosaEdgeError
from ..evaluation.comparison import Agreement, check_fp16_fidelity
from .base import BatchRange, BuildOptions, BuildResult
from .build_steps import (
    TARGETS,
    build_into,
    install_engine,
    plugin_unavailable,
    read_onnx_metadata,
    staged,
    standard_ops_copy,
    target_of,
)
from .quantized_build import Int8Recipe, quantize_into
from .runtimes import ONNXRUNTIME, RUNTIMES, default_target, runtime_for, runtime_named

__all__ = [
    "TARGETS", "BatchRange", "BuildResult", "Int8Recipe", "against_fp32", "build_engine", "describe",
    "plugin_unavailable", "read_onnx_metadata", "standard_ops_copy", "target_of",
]


def build_engine(onnx_path: Path, output: Path, target: str | None = None, precision: str = "fp16",
                 batch: BatchRange = BatchRange(), workspace_gib: float = 2.0, timing_cache: Path | None = None,
                 check: Callable[[Path], Any] | None = None, int8: Int8Recipe | None = None) -> BuildResult:
    """An engine for ``target`` (default: TensorRT where installed, else ONNX Runtime) from the FP32 export.

    FP32 and FP16 engines are built from the FP32 export; a TensorRT plan also from a TensorRT-ready INT8 QDQ graph
    (one this function wrote with ``-o NAME.onnx``); an INT8 engine from the FP32 export with ``int8``, the images it
    is calibrated on and checked on (it fails, writing nothing, where it strays from the FP32 model, unless the
    recipe accepts the loss). ``check(engine_path)``, where given, runs on the staged engine before it is moved into
    place; what it returns (or, for INT8, the check against the FP32 model) is the result's ``check``.
    """
    output = Path(output)
    runtime = runtime_named(target or default_target(), {name: RUNTIMES[name] for name in TARGETS})
    if int8 is not None and precision != "int8":
        raise CosaEdgeError(f"calibration images are for INT8 engines, not {precision}; use --precision int8")
    options = BuildOptions(batch, workspace_gib, timing_cache or runtime.timing_cache_for(output))
    with staged(output) as staged_engine:
        if int8 is not None:
            result = quantize_into(Path(onnx_path), staged_engine, output, runtime, int8, options)
        else:
            result = build_into(Path(onnx_path), staged_engine, runtime, precision, options)
        verdict = result.check
        if check is not None:
            try:
                verdict = check(staged_engine)
            except CosaEdgeError as error:
                kept = f"; {output} is as it was" if output.exists() else ""
                raise CosaEdgeError(f"{error}; nothing was written{kept}") from None
        install_engine(staged_engine, output)
    return BuildResult(output, result.target, result.precision, result.details, result.notes, verdict)


def against_fp32(reference_onnx: Path, samples: list[Sample]) -> Callable[[Path], Agreement]:
    """A ``check`` for :func:`build_engine`: the engine's outputs against the FP32 export's in ONNX Runtime, on
    ``samples`` (FP16 engines: probability difference, mask agreement, same class)."""

    def check(engine_path: Path) -> Agreement:
        with ONNXRUNTIME.open(reference_onnx) as reference, runtime_for(engine_path).open(engine_path) as engine:
            return check_fp16_fidelity(reference, engine, samples)

    return check


def describe(result: BuildResult) -> str:
    return json.dumps({"engine": str(result.engine), "target": result.target, "precision": result.precision,
                       **result.details}, indent=2)
