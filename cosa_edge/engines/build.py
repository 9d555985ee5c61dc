"""`cosa-edge build-engine`: an exported ONNX model -> an engine for one runtime.

* onnxruntime: an ONNX model optimised offline by ONNX Runtime (FP32, or FP16
  with the FP32 islands of :mod:`cosa_edge.engines.fp16`), for any CPU.
* openvino: an OpenVINO IR model (.xml and .bin) with a JSON sidecar, FP32 (INT8:
  :mod:`cosa_edge.engines.quantized_build`).
* tensorrt: a serialized TensorRT plan for this GPU and TensorRT version, with
  an optimisation profile over the batch range, a persisted timing cache and a
  JSON sidecar. FP16 through the builder flag on TensorRT 10 (the FP32 islands
  pinned by precision constraints); on TensorRT 11, which builds only strongly
  typed networks, from the FP16 ONNX.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import platform
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import __version__
from .._optional import require
from ..contract import INPUT_NAME, ModelMetadata
from ..errors import CosaEdgeError
from ..fileio import atomic_write_bytes, atomic_write_json
from ..kernels.trt_compat import plugin_problem
from .artifact import read_verified_onnx, write_model_with_metadata
from .fp16 import convert_to_fp16, fp32_node_names
from .plugin_fallback import replace_plugin_nodes
from .tensorrt_engine import sidecar_path

TARGETS = ("tensorrt", "onnxruntime", "openvino")


@dataclass(frozen=True)
class BatchRange:
    minimum: int = 1
    optimum: int = 4
    maximum: int = 8

    @classmethod
    def parse(cls, text: str) -> BatchRange:
        try:
            values = [int(v) for v in text.split(":")]
        except ValueError:
            values = []
        if len(values) == 1:
            values = values * 3
        if len(values) != 3 or not 1 <= values[0] <= values[1] <= values[2]:
            raise CosaEdgeError(f"--batch {text!r} must be MIN:OPT:MAX with 1 <= MIN <= OPT <= MAX, e.g. 1:4:8")
        return cls(*values)


def missing_tensorrt_modules() -> list[str]:
    """Which of the modules a TensorRT build needs (tensorrt, and pycuda for its CUDA calls) are not installed."""
    return [name for name in ("tensorrt", "pycuda") if importlib.util.find_spec(name) is None]


def default_target() -> str:
    """TensorRT where it and pycuda are installed, ONNX Runtime everywhere else."""
    return "onnxruntime" if missing_tensorrt_modules() else "tensorrt"


def read_onnx_metadata(path: Path) -> ModelMetadata:
    onnx = require("onnx")
    if not Path(path).is_file():
        raise CosaEdgeError(f"ONNX model {path} does not exist")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError and friends for a corrupt file
        raise CosaEdgeError(f"{path} is not a readable ONNX model ({type(exc).__name__}); export it again") from None
    return ModelMetadata.from_props({p.key: p.value for p in model.metadata_props}, str(path))


@dataclass(frozen=True)
class BuildResult:
    engine: Path
    target: str
    precision: str
    details: dict[str, Any]
    notes: tuple[str, ...] = ()  # one line each, for the user: what the build did differently and why
    check: Any = None  # what the ``check`` of build_engine returned for the engine, where one was given


def default_timing_cache(output: Path) -> Path:
    """A TensorRT engine's timing cache beside it (``NAME.timing.cache``), reused by the next build there."""
    return Path(output).with_suffix(".timing.cache")


@contextlib.contextmanager
def staged(output: Path) -> Iterator[Path]:
    """A path with ``output``'s name in a temporary folder beside it: build and check there, then
    :func:`install_engine`. The folder goes whatever happens, and with it any engine that was not installed."""
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=output.parent, prefix=f".{output.name}.") as tmp:
        yield Path(tmp) / output.name


def install_engine(staged_engine: Path, output: Path) -> None:
    """Move a built and checked engine into place with its sidecars, by renames within one folder.

    The sidecars go first and the engine last: a reader never finds a new engine without its sidecar, and one
    that finds the new sidecar beside the previous engine refuses it (the recorded hash differs) rather than
    running it with another engine's metadata.
    """
    from . import engine_files

    pairs = list(zip(engine_files(staged_engine), engine_files(output)))
    for source, destination in pairs[1:] + pairs[:1]:
        if source.exists():
            os.replace(source, destination)


def build_engine(onnx_path: Path, output: Path, target: str | None = None, precision: str = "fp16",
                 batch: BatchRange = BatchRange(), workspace_gib: float = 2.0, timing_cache: Path | None = None,
                 check: Callable[[Path], Any] | None = None) -> BuildResult:
    """An FP32 or FP16 engine from the FP32 export; or a TensorRT plan from a TensorRT-ready INT8 QDQ ONNX (one
    that ``cosa-edge build-engine --target tensorrt --precision int8 -o NAME.onnx`` wrote and checked).

    The engine is built beside ``output`` and moved into place only once built and, where ``check`` is given,
    once ``check(engine_path)`` has returned (what it returns is the result's ``check``); a build or a check that
    fails raises and leaves whatever was at ``output`` as it was.

    Other INT8 engines are built, calibrated and checked by :func:`cosa_edge.engines.quantized_build.build_int8`.
    """
    output = Path(output)
    with staged(output) as staged_engine:
        result = _build(onnx_path, staged_engine, target, precision, batch, workspace_gib,
                        timing_cache or default_timing_cache(output))
        verdict = check(staged_engine) if check else None
        install_engine(staged_engine, output)
    return BuildResult(output, result.target, result.precision, result.details, result.notes, verdict)


def _build(onnx_path: Path, output: Path, target: str | None, precision: str, batch: BatchRange,
           workspace_gib: float, timing_cache: Path) -> BuildResult:
    target = target or default_target()
    if target not in TARGETS:
        raise CosaEdgeError(f"unknown target {target!r}; choose {', '.join(TARGETS)}")
    if target == "tensorrt" and (missing := missing_tensorrt_modules()):
        raise CosaEdgeError(f"TensorRT engines need {' and '.join(missing)}, which this machine lacks; on an NVIDIA "
                            "GPU machine: pip install 'cosa-edge[tensorrt]' (or use --target onnxruntime)")
    metadata = read_onnx_metadata(Path(onnx_path))
    read_verified_onnx(Path(onnx_path))  # a changed export is refused before anything is built from it
    if target == "tensorrt" and metadata.precision == "int8" and precision == "int8":
        if (metadata.quantization.get("scheme") or {}).get("name") != "tensorrt":
            raise CosaEdgeError(f"{onnx_path} is quantized for {target_of(metadata)}, not for TensorRT (which needs "
                                "symmetric INT8); build from the FP32 export with --target tensorrt --precision int8")
        result = build_tensorrt(Path(onnx_path), Path(output), precision, batch, workspace_gib, timing_cache, metadata)
        return BuildResult(result.engine, result.target, result.precision, result.details)
    if precision == "int8" and metadata.precision == "fp32":
        raise CosaEdgeError("INT8 engines are calibrated and checked before they are written: use "
                            "`cosa-edge build-engine --precision int8 --calib-data SPEC` "
                            "(cosa_edge.engines.quantized_build.build_int8)")
    if precision not in ("fp16", "fp32", "int8"):
        raise CosaEdgeError(f"--precision must be fp16, fp32 or int8, not {precision!r}")
    if target == "openvino" and precision == "fp16":
        raise CosaEdgeError("OpenVINO engines are built in fp32 or int8; use --precision fp32 or int8")
    if metadata.precision != "fp32":
        raise CosaEdgeError(f"{onnx_path} is already {metadata.precision}; build from the FP32 export")
    with tempfile.TemporaryDirectory() as tmp:
        notes: list[str] = []
        reason = plugin_unavailable(target) if metadata.cosa_op == "plugin" else None
        if reason:
            onnx_path = standard_ops_copy(Path(onnx_path), Path(tmp) / "standard.onnx")
            metadata = metadata.with_changes(cosa_op="onnx")
            notes.append(f"{reason}; building from the standard export instead (the plugin node rewritten as "
                         "standard ONNX ops, which compute the same region maps)")
        if target == "onnxruntime":
            result = build_onnxruntime(Path(onnx_path), Path(output), precision, metadata)
        elif target == "openvino":
            from .openvino_engine import build_openvino

            details = build_openvino(Path(onnx_path), Path(output), metadata, precision)
            result = BuildResult(Path(output), "openvino", precision, details)
        else:
            result = build_tensorrt(Path(onnx_path), Path(output), precision, batch, workspace_gib, timing_cache,
                                    metadata)
    return BuildResult(result.engine, result.target, result.precision, result.details, tuple(notes))


def target_of(metadata: ModelMetadata) -> str:
    """The runtime an INT8 model's scheme was made for, from its metadata."""
    return (metadata.quantization.get("scheme") or {}).get("name", "an unknown runtime")


def plugin_unavailable(target: str) -> str | None:
    """Why ``target`` cannot run the COSA plugin node here, or None where it can."""
    if target == "onnxruntime":
        return "ONNX Runtime has no kernel for the COSA plugin node"
    if target == "openvino":
        return "OpenVINO has no kernel for the COSA plugin node"
    import numpy

    trt = require("tensorrt")
    return plugin_problem(trt.__version__, numpy.__version__, importlib.util.find_spec("tensorrt.plugin") is not None)


def standard_ops_copy(onnx_path: Path, destination: Path) -> Path:
    """A copy of a `--cosa-op plugin` export with the plugin node in standard ops (see plugin_fallback)."""
    onnx = require("onnx")
    model = onnx.load_from_string(read_verified_onnx(onnx_path))  # a changed model is refused, not re-hashed
    replace_plugin_nodes(model)
    metadata = ModelMetadata.from_props({p.key: p.value for p in model.metadata_props}, str(onnx_path))
    write_model_with_metadata(model, metadata.with_changes(cosa_op="onnx"), destination)  # a new graph, a new hash
    return destination


def build_onnxruntime(onnx_path: Path, output: Path, precision: str, metadata: ModelMetadata) -> BuildResult:
    """Offline graph optimisation by ONNX Runtime; the metadata travels with the model."""
    ort = require("onnxruntime")
    onnx = require("onnx")
    if output.suffix.lower() != ".onnx":
        raise CosaEdgeError(f"an ONNX Runtime engine is an .onnx file; name the output {output.with_suffix('.onnx')}")
    started = time.perf_counter()
    # Refuse a changed model before optimising it: the engine written below gets a fresh hash of its own.
    read_verified_onnx(onnx_path)
    with tempfile.TemporaryDirectory() as tmp:
        source = onnx_path
        if precision == "fp16":
            source = Path(tmp) / "fp16.onnx"
            metadata = convert_to_fp16(onnx_path, source)
        options = ort.SessionOptions()
        # EXTENDED fuses operators but makes no layout choices for one CPU's vector width,
        # so the result runs on any x86 or ARM CPU.
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        options.optimized_model_filepath = str(Path(tmp) / "optimised.onnx")
        options.log_severity_level = 3
        ort.InferenceSession(str(source), sess_options=options, providers=["CPUExecutionProvider"])
        optimised = onnx.load(options.optimized_model_filepath)
    # ONNX Runtime's optimised graph differs from its source: it is hashed as written.
    metadata = write_model_with_metadata(optimised, metadata, output)
    details = {"onnxruntime_version": ort.__version__, "optimisation": "ORT_ENABLE_EXTENDED",
               "seconds": round(time.perf_counter() - started, 2), "graph_sha256": metadata.graph_sha256}
    return BuildResult(engine=output, target="onnxruntime", precision=precision, details=details)


def tensorrt_major(trt) -> int:  # noqa: ANN001
    return int(trt.__version__.split(".")[0])


def strongly_typed(major: int) -> bool:
    """TensorRT 11 builds only strongly typed networks: no FP16 builder flag, the ONNX's types are the engine's."""
    return major >= 11


def precision_mode(precision: str, major: int, tf32: bool = False) -> str:
    """How a TensorRT engine got its precision, in words for the sidecar; true for every build.

    ``tf32``: the builder's TF32 flag (on by default in TensorRT), which lets FP32 convolutions and
    matrix multiplies round their inputs to TF32 on GPUs that have it.
    """
    if precision == "fp32":
        mode = "FP32"
    elif precision == "int8" and strongly_typed(major):
        mode = f"strongly typed INT8 QDQ ONNX, symmetric (TensorRT {major})"
    elif precision == "int8":
        mode = f"explicit INT8 QDQ ONNX, symmetric, with the INT8 builder flag (TensorRT {major})"
    elif precision == "fp16" and strongly_typed(major):
        mode = f"strongly typed FP16 ONNX (TensorRT {major})"
    elif precision == "fp16":
        mode = f"builder flag FP16 (TensorRT {major}) with FP32 islands pinned"
    else:
        raise CosaEdgeError(f"--precision must be fp16, fp32 or int8, not {precision!r}")
    return mode + ("; TF32 allowed in FP32 layers" if tf32 else "")


def _is_float(trt, tensor) -> bool:  # noqa: ANN001
    return tensor is not None and tensor.dtype in (trt.float32, trt.float16, trt.bfloat16)


def pin_fp32_layers(network, trt, fp32_names: set[str]) -> int:  # noqa: ANN001
    """TensorRT 10 with the FP16 flag: keep softmax and region-map layers in FP32. Returns how many.

    Only floating-point tensors can be pinned. The region-map subgraph also holds comparisons
    (Greater: FP16/FP32 in, BOOL out), logic (Or, Not: BOOL in and out) and casts from BOOL; under
    OBEY_PRECISION_CONSTRAINTS, asking such a layer to compute in FP32 or to emit FP32 names a type
    it cannot have and fails the build. So ``precision`` (the type a layer computes in; TensorRT
    reformats its inputs to it) is set only where every input and output is floating point, and an
    output type only on floating-point outputs (a cast from BOOL gets its FP32 output pinned). A
    comparison of FP16 scores needs no pinning: it orders FP16 values exactly.
    """
    pinned = 0
    for index in range(network.num_layers):
        layer = network.get_layer(index)
        if not (layer.type == trt.LayerType.SOFTMAX or layer.name in fp32_names or layer.type == trt.LayerType.PLUGIN_V3):
            continue
        inputs = [t for t in (layer.get_input(i) for i in range(layer.num_inputs)) if t is not None]
        float_outputs = [i for i in range(layer.num_outputs) if _is_float(trt, layer.get_output(i))]
        computes_in_float = (bool(inputs) and all(_is_float(trt, t) for t in inputs)
                             and len(float_outputs) == layer.num_outputs)
        if computes_in_float:
            layer.precision = trt.float32
        for out in float_outputs:
            layer.set_output_type(out, trt.float32)
        pinned += int(computes_in_float or bool(float_outputs))
    return pinned


def build_tensorrt(onnx_path: Path, output: Path, precision: str, batch: BatchRange, workspace_gib: float,
                   timing_cache: Path | None, metadata: ModelMetadata) -> BuildResult:
    trt = require("tensorrt")
    from ..kernels.cuda import PycudaRuntime

    cuda = PycudaRuntime()
    major = tensorrt_major(trt)
    started = time.perf_counter()
    plugin_aot = False
    if metadata.cosa_op == "plugin":
        from ..kernels import trt_plugin

        plugin_aot = trt_plugin.HAS_AOT
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    with tempfile.TemporaryDirectory() as tmp:
        source = onnx_path
        if precision == "fp16" and strongly_typed(major):
            source = Path(tmp) / "fp16.onnx"
            convert_to_fp16(onnx_path, source)
        # TensorRT 10: explicit batch is the default (flags 0); TensorRT 11 networks are always strongly typed.
        network = builder.create_network(0)
        parser = trt.OnnxParser(network, logger)
        if not parser.parse_from_file(str(source)):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise CosaEdgeError(f"TensorRT cannot parse {onnx_path}: {errors}")
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gib * (1 << 30)))
        pinned = 0
        if precision == "int8" and not strongly_typed(major):
            # TensorRT 10 builds an explicitly quantized (QDQ) network only with the INT8 flag; the layers outside
            # the QDQ pairs stay FP32. TensorRT 11 takes the QDQ graph's types as they are (strongly typed).
            config.set_flag(trt.BuilderFlag.INT8)
        if precision == "fp16" and not strongly_typed(major):
            onnx = require("onnx")
            config.set_flag(trt.BuilderFlag.FP16)
            config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
            pinned = pin_fp32_layers(network, trt, set(fp32_node_names(onnx.load(str(onnx_path)))))
        size = metadata.input_size
        profile = builder.create_optimization_profile()
        profile.set_shape(INPUT_NAME, (batch.minimum, 1, size, size), (batch.optimum, 1, size, size),
                          (batch.maximum, 1, size, size))
        config.add_optimization_profile(profile)
        cache_path = timing_cache or default_timing_cache(output)
        cache = config.create_timing_cache(cache_path.read_bytes() if cache_path.is_file() else b"")
        config.set_timing_cache(cache, ignore_mismatch=True)
        # Read, not set: TensorRT allows TF32 by default, and the sidecar should say what this build did.
        tf32 = hasattr(trt.BuilderFlag, "TF32") and bool(config.get_flag(trt.BuilderFlag.TF32))
        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise CosaEdgeError(f"TensorRT failed to build an engine from {onnx_path}; rerun with more --workspace or fp32")
    plan = bytes(serialized)
    build = {
        "tensorrt_version": trt.__version__, "gpu": cuda.device_name, "compute_capability": list(cuda.compute_capability),
        "precision": precision, "precision_mode": precision_mode(precision, major, tf32),
        "fp32_layers_pinned": pinned, "profile": {"min": batch.minimum, "opt": batch.optimum, "max": batch.maximum},
        "workspace_gib": workspace_gib, "timing_cache": str(cache_path), "plugin_aot": plugin_aot,
        "hardware_compatible": False, "version_compatible": False,
        "seconds": round(time.perf_counter() - started, 1), "host": platform.node(), "cosa_edge_version": __version__,
        # The plan is opaque: its loader checks the file's SHA-256 against this one (tensorrt_engine.check_plan).
        "plan_sha256": hashlib.sha256(plan).hexdigest(),
    }
    cuda.close()
    # The sidecar before the plan: no moment has a plan without the sidecar that describes it.
    atomic_write_json(sidecar_path(output), {"metadata": metadata.with_changes(precision=precision).to_props(),
                                             "build": build})
    atomic_write_bytes(output, plan)
    atomic_write_bytes(cache_path, bytes(config.get_timing_cache().serialize()))
    return BuildResult(engine=output, target="tensorrt", precision=precision, details=build)


def describe(result: BuildResult) -> str:
    return json.dumps({"engine": str(result.engine), "target": result.target, "precision": result.precision,
                       **result.details}, indent=2)
