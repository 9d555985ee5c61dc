"""The ONNX Runtime backend: the default engine, on any CPU (CUDA or TensorRT providers when installed)."""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np

from .._optional import require
from ..contract import INPUT_NAME, PREFIX, ModelMetadata
from ..errors import CosaEdgeError, first_line
from .artifact import read_verified_onnx, scan_onnx, verify_scanned, write_model_with_metadata
from .base import BuildOptions, BuildResult, Engine, Runtime, TensorSpec
from .fp16 import convert_to_fp16
from .int8_arithmetic import ASYMMETRIC_SCHEME, onnxruntime_session_entries, warn_if_checked_on_another_cpu
from .plugin_fallback import PLUGIN_OP, replace_plugin_nodes

if TYPE_CHECKING:  # the `export` extra, imported through require() where it is used
    import onnxruntime

NAME = "onnxruntime"
SUFFIX = ".onnx"


def _providers(ort: ModuleType, requested: str) -> list[str]:
    available = ort.get_available_providers()
    if requested == "cpu":
        return ["CPUExecutionProvider"]
    if requested == "auto":
        preferred = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
        return [p for p in preferred if p in available]
    names = [p.strip() for p in requested.split(",")]
    missing = [p for p in names if p not in available]
    if missing:
        raise CosaEdgeError(f"ONNX Runtime has no {', '.join(missing)} here; available: {', '.join(available)}")
    return names


def _quantization_record(props: dict[str, str]) -> dict:
    """The metadata's quantization record, read before the session is made (it decides the session's options)."""
    try:
        record = json.loads(props.get(PREFIX + "quantization", "{}"))
    except json.JSONDecodeError:
        return {}  # unreadable metadata is reported when the metadata is read in full
    return record if isinstance(record, dict) else {}


def _load_error(path: Path, exc: Exception) -> CosaEdgeError:
    return CosaEdgeError(f"ONNX Runtime cannot load {path}: {first_line(exc)}. "
                         "Is it an ONNX file from `cosa-edge export`?")


def _with_standard_region_maps(data: bytes) -> bytes:
    onnx = require("onnx")
    model = onnx.load_from_string(data)
    replace_plugin_nodes(model)
    return model.SerializeToString()


def _session(ort: ModuleType, path: Path, data: bytes, options: onnxruntime.SessionOptions,
             providers: list[str]) -> onnxruntime.InferenceSession:
    """ONNX Runtime's session of the checked bytes ``data`` (read from ``path``), or one clear error."""
    try:
        return ort.InferenceSession(data, sess_options=options, providers=providers)
    except CosaEdgeError:
        raise
    except Exception as exc:  # ORT raises its own Fail/InvalidProtobuf/... types
        if PLUGIN_OP not in str(exc):
            raise _load_error(path, exc) from None
    # A `--cosa-op plugin` export: ONNX Runtime has no kernel for the TensorRT plugin node, so
    # it runs the same computation as standard ops (tests check the two agree exactly).
    try:
        return ort.InferenceSession(_with_standard_region_maps(data), sess_options=options, providers=providers)
    except CosaEdgeError:
        raise
    except Exception as retry:
        raise _load_error(path, retry) from None


class OnnxRuntimeEngine(Engine):
    backend = NAME

    def __init__(self, path: Path, threads: int | None = None, providers: str = "cpu",
                 session_entries: dict[str, str] | None = None) -> None:
        """``session_entries``: ONNX Runtime session entries instead of cosa-edge's choice for the model
        (:func:`cosa_edge.engines.int8_arithmetic.onnxruntime_session_entries`); for measuring the alternatives only."""
        ort = require("onnxruntime")
        path = Path(path)
        if not path.is_file():
            raise CosaEdgeError(f"engine {path} does not exist")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            options.intra_op_num_threads = threads
        # Worker threads that spin between calls keep their cores busy: the streaming pipeline's decode,
        # preprocessing, overlay and encoding threads need those cores between engine calls. Side by side on
        # the 2-core CPU (docs/deployment.md), not spinning left the engine alone as fast (25.6-27.3 against
        # 24.8-27.0 frames/s) and raised the DICOM pipeline from 0.84-0.85 to 0.88-0.91 of it.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3  # errors only: warnings about unused initialisers are not the user's
        chosen = _providers(ort, providers)
        # Read once, check the graph hash, and give ONNX Runtime these same bytes: what runs is what was checked.
        data = path.read_bytes()
        try:
            digest, props = scan_onnx(data)
        except ValueError as exc:  # not protobuf at all
            raise _load_error(path, exc) from None
        integrity = verify_scanned(digest, props, path)
        quantization = _quantization_record(props)
        chosen_entries = onnxruntime_session_entries(quantization) if session_entries is None else session_entries
        for key, value in chosen_entries.items():
            options.add_session_config_entry(key, value)
        session = _session(ort, path, data, options, chosen)
        metadata = ModelMetadata.from_props(session.get_modelmeta().custom_metadata_map, str(path))
        super().__init__(path, metadata)
        warn_if_checked_on_another_cpu(metadata, path)
        self.integrity = integrity  # the graph hash checked above, for audit records (the JSONL header)
        self.session = session
        names = [i.name for i in session.get_inputs()]
        if names != [INPUT_NAME]:
            raise CosaEdgeError(f"{path} has inputs {names}; a cosa-edge engine has the one input '{INPUT_NAME}'")
        self.output_names = [o.name for o in session.get_outputs()]  # read once, not on every inference

    @property
    def inputs(self) -> list[TensorSpec]:
        return [TensorSpec(i.name, tuple(i.shape), i.type) for i in self.session.get_inputs()]

    @property
    def outputs(self) -> list[TensorSpec]:
        return [TensorSpec(o.name, tuple(o.shape), o.type) for o in self.session.get_outputs()]

    @property
    def providers(self) -> list[str]:
        return self.session.get_providers()

    def _infer(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        started = time.perf_counter()
        values = self.session.run(None, {INPUT_NAME: batch})
        self.last_times.stages = {"compute": (time.perf_counter() - started) * 1000.0}
        return {name: np.asarray(value, dtype=np.float32) for name, value in zip(self.output_names, values)}


def build_onnxruntime(onnx_path: Path, output: Path, precision: str, metadata: ModelMetadata,
                      options: BuildOptions = BuildOptions()) -> BuildResult:
    """Offline graph optimisation by ONNX Runtime; the metadata travels with the model."""
    ort = require("onnxruntime")
    onnx = require("onnx")
    if output.suffix.lower() != SUFFIX:
        raise CosaEdgeError(f"an ONNX Runtime engine is an .onnx file; name the output {output.with_suffix(SUFFIX)}")
    started = time.perf_counter()
    # Refuse a changed model before optimising it: the engine written below gets a fresh hash of its own.
    read_verified_onnx(onnx_path)
    with tempfile.TemporaryDirectory() as tmp:
        source = onnx_path
        if precision == "fp16":
            source = Path(tmp) / "fp16.onnx"
            metadata = convert_to_fp16(onnx_path, source)
        session_options = ort.SessionOptions()
        # EXTENDED fuses operators but makes no layout choices for one CPU's vector width,
        # so the result runs on any x86 or ARM CPU.
        session_options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        session_options.optimized_model_filepath = str(Path(tmp) / "optimised.onnx")
        session_options.log_severity_level = 3
        ort.InferenceSession(str(source), sess_options=session_options, providers=["CPUExecutionProvider"])
        optimised = onnx.load(session_options.optimized_model_filepath)
    # ONNX Runtime's optimised graph differs from its source: it is hashed as written.
    metadata = write_model_with_metadata(optimised, metadata, output)
    details = {"onnxruntime_version": ort.__version__, "optimisation": "ORT_ENABLE_EXTENDED",
               "seconds": round(time.perf_counter() - started, 2), "graph_sha256": metadata.graph_sha256}
    return BuildResult(engine=output, target=NAME, precision=precision, details=details)


RUNTIME = Runtime(
    name=NAME, label="ONNX Runtime", open=OnnxRuntimeEngine, suffixes=(SUFFIX, ".ort"), default_file="model.ort.onnx",
    build=build_onnxruntime, precisions=("fp32", "fp16", "int8"), default_precision="fp32",
    int8_scheme=ASYMMETRIC_SCHEME, plugin_problem=lambda: "ONNX Runtime has no kernel for the COSA plugin node",
    triton_file="model.onnx")
