"""`cosa-edge build-engine --precision int8`: quantize, check against the FP32 model, and only then write.

1. The FP32 export is quantized to a QDQ graph (:mod:`cosa_edge.engines.int8`), calibrated on
   real images read through the one preprocessing function.
2. The engine that will run is checked against the FP32 model on held-out images that took part
   neither in training nor in calibration (:mod:`cosa_edge.evaluation.comparison`): class flips by
   direction, lesion-presence flips, mask agreement, the largest probability difference, and
   each engine's own Dice and accuracy against the ground truth.
3. Past a limit the build fails with the figures and writes nothing, unless the user accepts the
   loss (``--accept-accuracy-loss``); the check's figures go into the engine's metadata either way.

What the engine is follows its runtime's record (``Runtime.int8_engine``): for ONNX Runtime the QDQ graph itself
(fused into integer kernels when it is loaded), for OpenVINO the QDQ graph converted to IR, for TensorRT the
symmetric QDQ graph, written as ``NAME.onnx`` on any machine and checked here in TensorRT's arithmetic, and built
into a plan where TensorRT and a GPU are present.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._optional import require
from ..data import Sample
from ..data.sources import data_spec_name, load_dataset
from ..data.splits import fold_part, parse_split
from ..errors import CosaEdgeError
from ..evaluation.comparison import Fidelity, compare_to_reference
from ..hardware import cpu_class
from .artifact import read_verified_onnx, write_model_with_metadata
from ..contract import ModelMetadata
from .base import BuildOptions, BuildResult, Runtime
from .build_steps import build_into, read_onnx_metadata, standard_ops_copy
from .int8 import SCHEMES, CalibrationImages, calibration_from_file, calibration_from_samples, quantize_int8
from .int8_arithmetic import arithmetic
from .runtimes import ONNXRUNTIME, runtime_for
from .tensorrt_engine import missing_modules as missing_tensorrt_modules


@dataclass(frozen=True)
class Int8Images:
    """What an INT8 build calibrates on and what it is checked on (held out from calibration)."""

    calibration: CalibrationImages
    check: list[Sample]
    check_source: str  # as the engine's metadata records it: data sets by name, not by path
    note: str | None = None  # for the user, where the choice needs a word of caution


def select_int8_images(calib_data: str | None, calib_count: int, check_data: str | None, split: str | None,
                       size: int) -> Int8Images:
    """Calibration and check images from the command's data specs: with ``split`` (FOLDS.json:K) calibration on
    fold K's training images and the check on its test images; else the check on ``check_data``, or on the
    calibration data's images not drawn for calibration."""
    if not calib_data:
        raise CosaEdgeError("--precision int8 needs --calib-data: real images (a data spec such as busi:DIR) that set "
                            "the activation ranges")
    if check_data == "none":
        raise CosaEdgeError("an INT8 engine is always checked against the FP32 model; give --check-data with "
                            "held-out images, or --split")
    folds = parse_split(split) if split else None

    def read(spec: str) -> list[Sample]:
        return load_dataset(spec, progress=False, phantom_size=size, include_normal=spec.startswith("busi:"))

    if calib_data.lower().endswith(".npy"):
        if folds:
            raise CosaEdgeError("--split selects images of a data set; it cannot apply to a .npy calibration file")
        calibration, pool, everything = calibration_from_file(Path(calib_data), size, calib_count), [], []
    else:
        everything = read(calib_data)
        pool = fold_part(everything, folds[0], folds[1], "train") if folds else everything
        calibration = calibration_from_samples(pool, size, calib_count, data_spec_name(calib_data))
    if check_data:
        check, check_source = read(check_data), data_spec_name(check_data)
        if folds:
            check = fold_part(check, folds[0], folds[1], "test")
            check_source += f", test images of fold {folds[1]} of {folds[0].name}"
        return Int8Images(calibration, check, check_source)
    if folds:
        return Int8Images(calibration, fold_part(everything, folds[0], folds[1], "test"),
                          f"{data_spec_name(calib_data)}, test images of fold {folds[1]} of {folds[0].name}")
    drawn = set(calibration.names)
    return Int8Images(calibration, [s for s in pool if s.name not in drawn],
                      f"{data_spec_name(calib_data)}, the images not drawn for calibration",
                      "checking on the calibration data's other images; if the model was trained on them, give "
                      "--check-data or --split with held-out images")


def _check_held_out(calibration: CalibrationImages, check: list[Sample]) -> None:
    if not check:
        raise CosaEdgeError("no images to check the INT8 engine on; give --check-data (images held out from "
                            "training and calibration)")
    shared = set(calibration.names) & {s.name for s in check}
    if shared:
        raise CosaEdgeError(f"{len(shared)} check images were also used for calibration (e.g. {sorted(shared)[0]}); "
                            "the check must be on held-out images: give other --check-data or use --split")


def _gate(fidelity: Fidelity, accept_loss: bool) -> list[str]:
    failures = fidelity.failures()
    if failures and not accept_loss:
        ref, new = fidelity.reference, fidelity.candidate
        scores = ""
        if ref.dice is not None and new.dice is not None:
            scores += f"; Dice {ref.dice:.3f} -> {new.dice:.3f}"
        if ref.acc is not None and new.acc is not None:
            scores += f", accuracy {ref.acc:.3f} -> {new.acc:.3f}"
        raise CosaEdgeError(f"the INT8 engine strays from the FP32 model on {fidelity.images} held-out images: "
                            f"{'; '.join(failures)}{scores}. Nothing was written. Calibrate on more or other images "
                            "(--calib-data, --calib-count, --calib-method), or keep FP32; --accept-accuracy-loss "
                            "writes it anyway, with these figures in its metadata")
    return failures


@dataclass(frozen=True)
class Int8Recipe:
    """How an INT8 engine is made: calibrated on ``calibration``, checked against the FP32 model on ``check``
    (held out from calibration), ranges set by ``method``; ``accept_accuracy_loss`` writes it even where the check
    fails (the figures go into its metadata either way)."""

    calibration: CalibrationImages
    check: list[Sample]
    check_source: str  # as the engine's metadata records it: data sets by name, not by path
    method: str = "minmax"
    accept_accuracy_loss: bool = False

    @classmethod
    def from_images(cls, images: Int8Images, method: str = "minmax", accept_accuracy_loss: bool = False) -> Int8Recipe:
        return cls(images.calibration, images.check, images.check_source, method, accept_accuracy_loss)


def _engine_kind(runtime: Runtime, output: Path) -> str:
    """What the INT8 engine at ``output`` is: the QDQ graph, the runtime's conversion of it, or a TensorRT plan.

    A runtime whose INT8 engine is a plan can still have its QDQ graph written (and checked) here as NAME.onnx.
    """
    kind = "graph" if runtime.int8_engine == "plan" and output.suffix.lower() == ".onnx" else runtime.int8_engine
    if kind == "plan" and (missing := missing_tensorrt_modules()):
        raise CosaEdgeError(f"a {runtime.label} INT8 plan needs {' and '.join(missing)}, which this machine lacks; "
                            "write the TensorRT-ready INT8 ONNX here instead (-o NAME.onnx: it is checked here) and "
                            "build the plan from it on the GPU machine")
    suffix = None if runtime.int8_engine == "plan" else runtime.suffixes[0]  # a plan's file name is the user's
    if suffix and output.suffix.lower() != suffix:
        raise CosaEdgeError(f"an INT8 {runtime.name} engine is a {suffix} file; name the output "
                            f"{output.with_suffix(suffix)}")
    return kind


def quantize_into(onnx_path: Path, staged_engine: Path, output: Path, runtime: Runtime, recipe: Int8Recipe,
                  options: BuildOptions) -> BuildResult:
    """Quantize the FP32 export for ``runtime``, check the engine that will run against the FP32 model, and write it
    at ``staged_engine`` (build_engine moves it to ``output`` afterwards). The result's ``check`` is the Fidelity."""
    onnx = require("onnx")
    metadata = read_onnx_metadata(onnx_path)
    read_verified_onnx(onnx_path)
    if metadata.precision != "fp32":
        raise CosaEdgeError(f"{onnx_path} is already {metadata.precision}; quantize the FP32 export "
                            "(`cosa-edge export`), not an engine built from it")
    engine_kind = _engine_kind(runtime, output)
    _check_held_out(recipe.calibration, recipe.check)
    assert runtime.int8_scheme is not None and runtime.build is not None
    scheme = SCHEMES[runtime.int8_scheme]
    notes: list[str] = []
    # Intermediate graphs in their own folder inside the staging one: no name of theirs can be the engine's.
    with tempfile.TemporaryDirectory(dir=staged_engine.parent) as work:
        tmp = Path(work)
        source = onnx_path
        if metadata.cosa_op == "plugin":  # calibration runs the graph in ONNX Runtime, which has no plugin kernel
            source = standard_ops_copy(onnx_path, tmp / "standard.onnx")
            notes.append("quantized the standard export (the plugin node rewritten as standard ONNX ops, which compute "
                         "the same region maps): calibration runs the graph in ONNX Runtime")
        qdq = tmp / "int8.onnx"
        quantized = quantize_int8(source, qdq, recipe.calibration, scheme, recipe.method)
        candidate_path = qdq
        if engine_kind == "converted":  # check the engine that will run: the runtime's reading of the QDQ graph
            candidate_path = tmp / f"int8{runtime.suffixes[0]}"
            runtime.build(qdq, candidate_path, "int8", quantized, BuildOptions())
        with ONNXRUNTIME.open(source) as reference, runtime_for(candidate_path).open(candidate_path) as candidate:
            fidelity = compare_to_reference(reference, candidate, recipe.check)
        failures = _gate(fidelity, recipe.accept_accuracy_loss)
        if failures:
            notes.append("written despite the accuracy check (--accept-accuracy-loss): " + "; ".join(failures))
        final = quantized.with_changes(quantization=_quantization_record(quantized, fidelity, failures, recipe,
                                                                         runtime, engine_kind))
        model = onnx.load(str(qdq))
        if engine_kind == "graph":
            written = write_model_with_metadata(model, final, staged_engine)
            return BuildResult(output, runtime.name, "int8", {"scheme": scheme.name,
                                                              "graph_sha256": written.graph_sha256},
                               tuple(notes), fidelity)
        checked = tmp / "checked.onnx"
        checked_metadata = write_model_with_metadata(model, final, checked)
        if engine_kind == "converted":
            built = runtime.build(checked, staged_engine, "int8", checked_metadata, BuildOptions())
        else:  # a TensorRT plan from the checked QDQ graph
            built = build_into(checked, staged_engine, runtime, "int8", options)
    return BuildResult(output, runtime.name, "int8", built.details, tuple(notes) + built.notes, fidelity)


def _quantization_record(quantized: ModelMetadata, fidelity: Fidelity, failures: list[str], recipe: Int8Recipe,
                         runtime: Runtime, engine_kind: str) -> dict[str, Any]:
    """The engine's quantization metadata with the check's figures, and the CPU class the check ran on: 8-bit
    kernels differ between classes (cosa_edge.hardware), and an engine opened on another class says so."""
    checked_on = {"cpu_class": cpu_class(), "arithmetic": f"{runtime.label}'s CPU plugin"
                  if engine_kind == "converted" else arithmetic(quantized.quantization)}
    record: dict[str, Any] = {**quantized.quantization,
                              "check": {"data": recipe.check_source, **checked_on, **fidelity.to_dict()}}
    if failures:
        record["check"]["accepted_despite"] = failures
    return record
