"""Accuracy beside latency: every benchmarked engine scored on the same labelled images.

Each engine gets ``dice``, ``miou``, ``acc``, ``auc`` and ``images`` against the ground truth
(:func:`cosa_edge.evaluation.accuracy.accuracy_of`), and, where an FP32 engine of the same model was
measured in the same run, its agreement with the first such engine: class flips by direction, lesion
presence flips and mask agreement, the figures that an average Dice or accuracy can hide.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..data import Sample
from ..evaluation.accuracy import accuracy_of
from ..evaluation.comparison import compare_outputs
from ..evaluation.engine_outputs import run_engine
from ..engines.base import Engine
from .flops import gflop_per_image
from .runner import BenchResult


def _model_key(engine: Engine) -> tuple[str, str, int]:
    return engine.metadata.architecture, engine.metadata.encoder, engine.input_size


def reference_engines(engines: list[Engine]) -> dict[tuple[str, str, int], Engine]:
    """For each model measured, the FP32 engine the others are compared with: the first FP32 one of that model
    (the baseline checkpoint where it is that model)."""
    references: dict[tuple[str, str, int], Engine] = {}
    for engine in engines:
        if engine.metadata.precision == "fp32":
            references.setdefault(_model_key(engine), engine)
    return references


def score_engines(engines: list[Engine], samples: list[Sample]) -> dict[int, dict[str, Any]]:
    """Accuracy of each engine, with agreement with the FP32 reference of the same model."""
    references = reference_engines(engines)
    outputs = {id(e): run_engine(e, samples) for e in engines}
    scored = {}
    for engine in engines:
        entry: dict[str, Any] = accuracy_of(outputs[id(engine)], samples).to_dict()
        reference = references.get(_model_key(engine))
        if reference is not None and engine is not reference:
            agreement = compare_outputs(outputs[id(reference)], outputs[id(engine)],
                                        reference.metadata.presence.get("min_lesion_share"))
            entry["agreement"] = {"reference": Path(reference.path).name, **agreement.changes()}
        scored[id(engine)] = entry
    return scored


def model_gflop(engines: list[Engine]) -> dict[int, float | None]:
    """Each engine's GFLOP per image, counted from its own ONNX file, else from one of the same model measured
    alongside (a TensorRT plan or an OpenVINO model holds no ONNX graph to count)."""
    counted: dict[tuple[str, str, int], float] = {}
    for engine in engines:  # counted once a model: the count runs the graph
        if Path(engine.path).suffix.lower() == ".onnx" and _model_key(engine) not in counted:
            value = gflop_per_image(Path(engine.path))
            if value is not None:
                counted[_model_key(engine)] = value
    return {id(e): counted.get(_model_key(e)) for e in engines}


def attach_accuracy(results: list[BenchResult], engines: list[Engine], samples: list[Sample] | None) -> None:
    by_name = {(str(e.path), e.backend): e for e in engines}
    flops = model_gflop(engines)
    scored = score_engines(engines, samples) if samples else {}
    for result in results:
        engine = by_name.get((result.engine, result.backend))
        if engine is None:
            continue
        result.gflop_per_image = flops.get(id(engine))
        result.accuracy = scored.get(id(engine))
