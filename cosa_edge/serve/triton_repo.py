"""`cosa-edge export-triton`: an engine as a model in a Triton Inference Server model repository.

    REPO/NAME/config.pbtxt
    REPO/NAME/1/model.onnx     (backend onnxruntime: an ONNX Runtime engine, FP32, FP16 or INT8)
    REPO/NAME/1/model.plan     (backend tensorrt: a TensorRT engine)

The configuration is built as Triton's own protobuf message (``tritonclient``'s ``model_config_pb2``)
and written in protobuf's text format, so a field Triton does not know cannot be written. It holds
the engine contract's tensors (the batch dimension left to ``max_batch_size``), dynamic batching,
instance groups, a warm-up request and the cosa-edge metadata as parameters. Nothing here runs a
model: shapes and names come from the engine's metadata, whose file hash is checked first.

Needs the ``triton`` extra (tritonclient with its protobuf schema); no torch, no runtime.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .._optional import require
from ..contract import CLASS_OUTPUT, INPUT_NAME, LESION_OUTPUT, OOD_OUTPUT, ModelMetadata
from ..engines.artifact import read_verified_onnx
from ..errors import CosaEdgeError
from ..fileio import atomic_write_text

#: Metadata left out of the parameters: long texts that the model file itself carries.
_LONG_METADATA = ("model_card", "contract")
#: How long the dynamic batcher may hold a request to form a larger batch (a frame period is 17-50 ms).
QUEUE_DELAY_MICROSECONDS = 1000


@dataclass(frozen=True)
class TritonExport:
    model_dir: Path
    config: Path
    model_file: Path
    backend: str


def _metadata_and_backend(engine: Path, triton_trt_version: str | None) -> tuple[ModelMetadata, str, bytes]:
    """The engine's metadata, the Triton backend that serves it, and its bytes (checked against its hash)."""
    suffix = engine.suffix.lower()
    if not engine.is_file():
        raise CosaEdgeError(f"engine {engine} does not exist")
    if suffix == ".onnx":
        from ..engines.build import read_onnx_metadata

        data = read_verified_onnx(engine)
        metadata = read_onnx_metadata(engine)
        if metadata.cosa_op == "plugin":
            raise CosaEdgeError(f"{engine.name} holds the COSA TensorRT plugin node, which Triton's onnxruntime backend "
                                "cannot run; export with --cosa-op onnx (the same region maps in standard ops)")
        return metadata, "onnxruntime", data
    if suffix in (".engine", ".plan", ".trt"):
        from ..engines.tensorrt_engine import check_plan, read_sidecar, sidecar_path

        sidecar = read_sidecar(engine)
        data = engine.read_bytes()
        check_plan(data, sidecar, engine)
        metadata = ModelMetadata.from_props(sidecar.get("metadata", {}), str(sidecar_path(engine)))
        built = sidecar.get("build", {}).get("tensorrt_version", "?")
        if triton_trt_version and built != triton_trt_version:
            raise CosaEdgeError(f"{engine.name} was built with TensorRT {built}, but the Triton container that will "
                                f"serve it has TensorRT {triton_trt_version}: a plan runs only on the TensorRT version "
                                "that built it; build it inside that container (`cosa-edge build-engine` there)")
        if metadata.cosa_op == "plugin":
            raise CosaEdgeError(f"{engine.name} uses the COSA plugin, which Triton's tensorrt backend does not load; "
                                "build the plan from a --cosa-op onnx export")
        return metadata, "tensorrt", data
    raise CosaEdgeError(f"{engine.name}: Triton serves ONNX models (.onnx) and TensorRT plans (.engine, .plan); "
                        "an OpenVINO or PyTorch model is not exported here")


def model_config(metadata: ModelMetadata, name: str, backend: str, max_batch: int, instances: int, kind: str,
                 tensorrt_accelerator: bool = False):  # noqa: ANN201  (a model_config_pb2.ModelConfig)
    """Triton's ModelConfig message for an engine with this metadata."""
    mc = require("tritonclient.grpc.model_config_pb2")
    if max_batch < 1 or instances < 1:
        raise CosaEdgeError("--max-batch and --instances must be at least 1")
    if kind not in ("cpu", "gpu"):
        raise CosaEdgeError(f"--kind must be cpu or gpu, not {kind!r}")
    if backend == "tensorrt" and kind == "cpu":
        raise CosaEdgeError("a TensorRT plan runs on a GPU: use --kind gpu")
    size = metadata.input_size
    fp32 = mc.DataType.Value("TYPE_FP32")
    shapes = {LESION_OUTPUT: [1, size, size], CLASS_OUTPUT: [len(metadata.class_names)], OOD_OUTPUT: [1]}
    unknown = [o for o in metadata.outputs if o not in shapes]
    if unknown:
        raise CosaEdgeError(f"the engine names outputs cosa-edge does not know ({', '.join(unknown)}); export it again")
    config = mc.ModelConfig(name=name, backend=backend, max_batch_size=max_batch)
    config.input.append(mc.ModelInput(name=INPUT_NAME, data_type=fp32, dims=[1, size, size]))
    for output in metadata.outputs:
        config.output.append(mc.ModelOutput(name=output, data_type=fp32, dims=shapes[output]))
    preferred = sorted({b for b in (2, 4, 8, 16, 32) if b < max_batch} | {max_batch})
    config.dynamic_batching.preferred_batch_size.extend(preferred)
    config.dynamic_batching.max_queue_delay_microseconds = QUEUE_DELAY_MICROSECONDS
    group = config.instance_group.add()
    group.count, group.kind = instances, mc.ModelInstanceGroup.Kind.Value(f"KIND_{kind.upper()}")
    warmup = config.model_warmup.add(name="one_frame", batch_size=1)
    warmup.inputs[INPUT_NAME].data_type = fp32
    warmup.inputs[INPUT_NAME].dims.extend([1, size, size])
    warmup.inputs[INPUT_NAME].zero_data = True
    if tensorrt_accelerator:
        if backend != "onnxruntime" or kind != "gpu":
            raise CosaEdgeError("--tensorrt-accelerator is for an ONNX model served on GPUs (--kind gpu)")
        if metadata.precision == "int8" and (metadata.quantization.get("scheme") or {}).get("name") != "tensorrt":
            raise CosaEdgeError("this INT8 model is quantized for ONNX Runtime (unsigned activations), which TensorRT "
                                "cannot build; serve it without --tensorrt-accelerator, or export TensorRT's INT8 "
                                "graph (build-engine --target tensorrt --precision int8 -o NAME.onnx)")
        accelerator = config.optimization.execution_accelerators.gpu_execution_accelerator.add(name="tensorrt")
        accelerator.parameters["precision_mode"] = "INT8" if metadata.precision == "int8" else "FP16"
        accelerator.parameters["max_workspace_size_bytes"] = str(1 << 30)
    for key, value in metadata.to_props().items():
        if key.split(".", 1)[1] not in _LONG_METADATA:
            config.parameters[key].string_value = value
    return config


def config_text(config) -> str:  # noqa: ANN001
    text_format = require("google.protobuf.text_format")
    return text_format.MessageToString(config)


def parse_config(text: str):  # noqa: ANN201
    """A config.pbtxt read with Triton's schema; a field it does not know is an error."""
    mc = require("tritonclient.grpc.model_config_pb2")
    text_format = require("google.protobuf.text_format")
    try:
        return text_format.Parse(text, mc.ModelConfig())
    except text_format.ParseError as exc:
        raise CosaEdgeError(f"not a valid Triton model configuration: {exc}") from None


def export_triton(engine: Path, repo: Path, name: str = "cosa_edge", max_batch: int = 8, instances: int = 1,
                  kind: str = "cpu", overwrite: bool = False, triton_trt_version: str | None = None,
                  tensorrt_accelerator: bool = False) -> TritonExport:
    """Write ``engine`` as model ``name`` (version 1) into the model repository ``repo``.

    The model's folder is written beside its place and renamed into it at the end: an interrupted export
    leaves the repository as it was.
    """
    engine, repo = Path(engine), Path(repo)
    if not name or "/" in name or name.startswith("."):
        raise CosaEdgeError(f"--name {name!r} must be a plain folder name")
    metadata, backend, data = _metadata_and_backend(engine, triton_trt_version)
    config = model_config(metadata, name, backend, max_batch, instances, kind, tensorrt_accelerator)
    text = config_text(config)
    parse_config(text)  # what is written must read back with Triton's schema
    target = repo / name
    if target.exists() and any(target.iterdir()) and not overwrite:
        raise CosaEdgeError(f"{target} already holds a model; give --overwrite to replace it, or another --name")
    repo.mkdir(parents=True, exist_ok=True)
    model_name = "model.onnx" if backend == "onnxruntime" else "model.plan"
    staging = Path(tempfile.mkdtemp(dir=repo, prefix=f".{name}."))
    try:
        (staging / "1").mkdir()
        (staging / "1" / model_name).write_bytes(data)
        atomic_write_text(staging / "config.pbtxt", text)
        # Provenance beside the model (Triton ignores other files): which engine, and its hash.
        atomic_write_text(staging / "cosa_edge.json", json.dumps(
            {"engine": engine.name, "backend": backend, "precision": metadata.precision,
             "graph_sha256": metadata.graph_sha256, "intended_use": metadata.intended_use}, indent=2))
        if target.exists():
            old = Path(tempfile.mkdtemp(dir=repo, prefix=f".{name}.old."))
            os.replace(target, old / name)
            os.replace(staging, target)
            shutil.rmtree(old)
        else:
            os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return TritonExport(target, target / "config.pbtxt", target / "1" / model_name, backend)
