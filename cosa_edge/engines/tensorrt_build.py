"""TensorRT's builder: a serialized plan for this GPU and TensorRT version, with an optimisation profile over the
batch range, a persisted timing cache and a JSON sidecar (written before the plan). FP16 through the builder flag on
TensorRT 10 (the FP32 islands pinned by precision constraints); on TensorRT 11, which builds only strongly typed
networks, from the FP16 ONNX. Needs TensorRT's full bindings (the lean runtime that runs engines has no builder).
"""

from __future__ import annotations

import hashlib
import platform
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from .. import __version__
from .._optional import require
from ..contract import INPUT_NAME, ModelMetadata
from ..errors import CosaEdgeError
from ..fileio import atomic_write_bytes, atomic_write_json
from .base import TIMING_CACHE_SUFFIX, BuildOptions, BuildResult
from .fp16 import convert_to_fp16, fp32_node_names

if TYPE_CHECKING:  # an optional import (the `tensorrt` extras), required where an engine is built
    import tensorrt

#: The runtime's name (its record is in tensorrt_engine.py, which imports this module for its builder).
NAME = "tensorrt"


def sidecar_path(engine_path: Path) -> Path:
    """The JSON beside a plan that holds what the plan cannot: the model's metadata and how it was built."""
    return Path(str(engine_path) + ".json")


def tensorrt_major(trt: ModuleType) -> int:
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


def _is_float(trt: ModuleType, tensor: tensorrt.ITensor | None) -> bool:
    return tensor is not None and tensor.dtype in (trt.float32, trt.float16, trt.bfloat16)


def pin_fp32_layers(network: tensorrt.INetworkDefinition, trt: ModuleType, fp32_names: set[str]) -> int:
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
        if not (layer.type == trt.LayerType.SOFTMAX or layer.name in fp32_names
                or layer.type == trt.LayerType.PLUGIN_V3):
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


def build_tensorrt(onnx_path: Path, output: Path, precision: str, metadata: ModelMetadata,
                   options: BuildOptions = BuildOptions()) -> BuildResult:
    """A serialized plan for this GPU and TensorRT version, with an optimisation profile over ``options.batch``,
    a persisted timing cache and the sidecar, written before the plan."""
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
    cache_path = options.timing_cache or Path(output).with_suffix(TIMING_CACHE_SUFFIX)
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
        config, pinned = _builder_config(trt, builder, network, onnx_path, precision, metadata.input_size, options,
                                         cache_path)
        # Read, not set: TensorRT allows TF32 by default, and the sidecar should say what this build did.
        tf32 = hasattr(trt.BuilderFlag, "TF32") and bool(config.get_flag(trt.BuilderFlag.TF32))
        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise CosaEdgeError(f"TensorRT failed to build an engine from {onnx_path}; rerun with more --workspace "
                                "or fp32")
    plan = bytes(serialized)
    batch = options.batch
    build = {
        "tensorrt_version": trt.__version__, "gpu": cuda.device_name,
        "compute_capability": list(cuda.compute_capability),
        "precision": precision, "precision_mode": precision_mode(precision, major, tf32),
        "fp32_layers_pinned": pinned, "profile": {"min": batch.minimum, "opt": batch.optimum, "max": batch.maximum},
        "workspace_gib": options.workspace_gib, "timing_cache": str(cache_path), "plugin_aot": plugin_aot,
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
    return BuildResult(engine=output, target=NAME, precision=precision, details=build)


def _builder_config(trt: Any, builder: Any, network: Any, onnx_path: Path, precision: str, size: int,
                    options: BuildOptions, cache_path: Path) -> tuple[Any, int]:
    """The builder configuration: workspace, precision flags (and FP32 layers pinned, TensorRT 10 FP16), the
    optimisation profile over ``options.batch``, and the timing cache read from ``cache_path``; and how many layers
    were pinned to FP32."""
    major = tensorrt_major(trt)
    batch = options.batch
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(options.workspace_gib * (1 << 30)))
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
    profile = builder.create_optimization_profile()
    profile.set_shape(INPUT_NAME, (batch.minimum, 1, size, size), (batch.optimum, 1, size, size),
                      (batch.maximum, 1, size, size))
    config.add_optimization_profile(profile)
    cache = config.create_timing_cache(cache_path.read_bytes() if cache_path.is_file() else b"")
    config.set_timing_cache(cache, ignore_mismatch=True)
    return config, pinned
