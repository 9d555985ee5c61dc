"""`cosa-edge export-triton`: an engine as a model in a Triton Inference Server model repository.

    REPO/NAME/config.pbtxt
    REPO/NAME/1/model.onnx     (backend onnxruntime: an ONNX Runtime engine, FP32, FP16 or INT8)
    REPO/NAME/1/model.plan     (backend tensorrt: a TensorRT engine)
    REPO/NAME_preprocess/      (backend python: a raw frame -> the engine's input, serve/triton_preprocess.py)
    REPO/NAME_pipeline/        (an ensemble of the two: clients send frames, not tensors)

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
from typing import TYPE_CHECKING

from .._optional import require
from ..contract import CLASS_OUTPUT, INPUT_NAME, LESION_OUTPUT, OOD_OUTPUT, ModelMetadata
from ..engines.artifact import read_verified_onnx
from ..engines.int8_arithmetic import scheme_name
from ..engines.runtimes import ONNXRUNTIME, RUNTIMES, TENSORRT, runtime_for
from ..errors import CosaEdgeError
from ..fileio import _umask, atomic_write_text

if TYPE_CHECKING:  # the `triton` extra, imported through require() where it is used
    from tritonclient.grpc.model_config_pb2 import ModelConfig

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
    pipeline_dirs: tuple[Path, ...] = ()  # NAME_preprocess and NAME_pipeline, where written


def _read_onnx(engine: Path, triton_trt_version: str | None) -> tuple[ModelMetadata, bytes]:
    from ..engines.build import read_onnx_metadata

    data = read_verified_onnx(engine)
    metadata = read_onnx_metadata(engine)
    if metadata.cosa_op == "plugin":
        raise CosaEdgeError(f"{engine.name} holds the COSA TensorRT plugin node, which Triton's onnxruntime backend "
                            "cannot run; export with --cosa-op onnx (the same region maps in standard ops)")
    return metadata, data


def _read_plan(engine: Path, triton_trt_version: str | None) -> tuple[ModelMetadata, bytes]:
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
    return metadata, data


#: How an engine of each runtime Triton serves is read and checked (Triton's backend has the runtime's name).
_READERS = {ONNXRUNTIME.name: _read_onnx, TENSORRT.name: _read_plan}


def read_served_engine(engine: Path, triton_trt_version: str | None) -> tuple[ModelMetadata, str, bytes]:
    """The engine's metadata, the Triton backend that serves it, and its bytes (checked against its hash)."""
    if not engine.is_file():
        raise CosaEdgeError(f"engine {engine} does not exist")
    try:
        runtime = runtime_for(engine)
    except CosaEdgeError:
        runtime = None
    if runtime is None or runtime.name not in _READERS:
        raise CosaEdgeError(f"{engine.name}: Triton serves ONNX models (.onnx) and TensorRT plans (.engine, .plan); "
                            "an OpenVINO or PyTorch model is not exported here")
    metadata, data = _READERS[runtime.name](engine, triton_trt_version)
    return metadata, runtime.name, data


def output_dims(metadata: ModelMetadata) -> dict[str, list[int]]:
    """Each output's dims without the batch dimension, in the engine's order (the engine contract)."""
    size = metadata.input_size
    shapes = {LESION_OUTPUT: [1, size, size], CLASS_OUTPUT: [len(metadata.class_names)], OOD_OUTPUT: [1]}
    unknown = [o for o in metadata.outputs if o not in shapes]
    if unknown:
        raise CosaEdgeError(f"the engine names outputs cosa-edge does not know ({', '.join(unknown)}); export it again")
    return {output: shapes[output] for output in metadata.outputs}


def preferred_batch_sizes(max_batch: int) -> list[int]:
    """The batch sizes the dynamic batcher prefers: powers of two below the maximum, and the maximum."""
    return sorted({b for b in (2, 4, 8, 16, 32) if b < max_batch} | {max_batch})


def metadata_parameters(metadata: ModelMetadata) -> dict[str, str]:
    """The cosa-edge metadata as a model's string parameters (clients read the model's rules from them)."""
    return {key: value for key, value in metadata.to_props().items() if key.split(".", 1)[1] not in _LONG_METADATA}


def model_config(metadata: ModelMetadata, name: str, backend: str, max_batch: int, instances: int, kind: str,
                 tensorrt_accelerator: bool = False) -> ModelConfig:
    """Triton's ModelConfig message for an engine with this metadata."""
    mc = require("tritonclient.grpc.model_config_pb2")
    if max_batch < 1 or instances < 1:
        raise CosaEdgeError("--max-batch and --instances must be at least 1")
    if kind not in ("cpu", "gpu"):
        raise CosaEdgeError(f"--kind must be cpu or gpu, not {kind!r}")
    if RUNTIMES[backend].gpu_only and kind == "cpu":
        raise CosaEdgeError(f"a {RUNTIMES[backend].label} plan runs on a GPU: use --kind gpu")
    size = metadata.input_size
    fp32 = mc.DataType.Value("TYPE_FP32")
    config = mc.ModelConfig(name=name, backend=backend, max_batch_size=max_batch)
    config.input.append(mc.ModelInput(name=INPUT_NAME, data_type=fp32, dims=[1, size, size]))
    for output, dims in output_dims(metadata).items():
        config.output.append(mc.ModelOutput(name=output, data_type=fp32, dims=dims))
    config.dynamic_batching.preferred_batch_size.extend(preferred_batch_sizes(max_batch))
    config.dynamic_batching.max_queue_delay_microseconds = QUEUE_DELAY_MICROSECONDS
    group = config.instance_group.add()
    group.count, group.kind = instances, mc.ModelInstanceGroup.Kind.Value(f"KIND_{kind.upper()}")
    warmup = config.model_warmup.add(name="one_frame", batch_size=1)
    warmup.inputs[INPUT_NAME].data_type = fp32
    warmup.inputs[INPUT_NAME].dims.extend([1, size, size])
    warmup.inputs[INPUT_NAME].zero_data = True
    if tensorrt_accelerator:
        if backend != ONNXRUNTIME.name or kind != "gpu":
            raise CosaEdgeError("--tensorrt-accelerator is for an ONNX model served on GPUs (--kind gpu)")
        if metadata.precision == "int8" and scheme_name(metadata.quantization) != TENSORRT.int8_scheme:
            raise CosaEdgeError("this INT8 model is quantized for ONNX Runtime (unsigned activations), which TensorRT "
                                "cannot build; serve it without --tensorrt-accelerator, or export TensorRT's INT8 "
                                "graph (build-engine --target tensorrt --precision int8 -o NAME.onnx)")
        accelerator = config.optimization.execution_accelerators.gpu_execution_accelerator.add(name=TENSORRT.name)
        accelerator.parameters["precision_mode"] = "INT8" if metadata.precision == "int8" else "FP16"
        accelerator.parameters["max_workspace_size_bytes"] = str(1 << 30)
    for key, value in metadata_parameters(metadata).items():
        config.parameters[key].string_value = value
    return config


def preprocess_config(metadata: ModelMetadata, name: str, instances: int) -> ModelConfig:
    """The Python-backend model that turns a raw frame into the engine's input (serve/triton_preprocess.py)."""
    mc = require("tritonclient.grpc.model_config_pb2")
    from .triton_preprocess import FRAME_INPUT, ROI_INPUT

    size = metadata.input_size
    config = mc.ModelConfig(name=f"{name}_preprocess", backend="python", max_batch_size=0)
    config.input.append(mc.ModelInput(name=FRAME_INPUT, data_type=mc.DataType.Value("TYPE_UINT8"), dims=[-1, -1, -1]))
    config.input.append(mc.ModelInput(name=ROI_INPUT, data_type=mc.DataType.Value("TYPE_INT32"), dims=[4],
                                      optional=True))
    config.output.append(mc.ModelOutput(name=INPUT_NAME, data_type=mc.DataType.Value("TYPE_FP32"),
                                        dims=[1, 1, size, size]))
    group = config.instance_group.add()
    group.count, group.kind = instances, mc.ModelInstanceGroup.Kind.Value("KIND_CPU")
    config.parameters["input_size"].string_value = str(size)
    return config


def ensemble_config(metadata: ModelMetadata, name: str) -> ModelConfig:
    """``NAME_pipeline``: a raw frame (and an optional ROI) in, the engine's outputs out."""
    mc = require("tritonclient.grpc.model_config_pb2")
    from .triton_preprocess import FRAME_INPUT, ROI_INPUT

    size = metadata.input_size
    fp32 = mc.DataType.Value("TYPE_FP32")
    shapes = {LESION_OUTPUT: [1, 1, size, size], CLASS_OUTPUT: [1, len(metadata.class_names)], OOD_OUTPUT: [1, 1]}
    config = mc.ModelConfig(name=f"{name}_pipeline", platform="ensemble", max_batch_size=0)
    config.input.append(mc.ModelInput(name=FRAME_INPUT, data_type=mc.DataType.Value("TYPE_UINT8"), dims=[-1, -1, -1]))
    config.input.append(mc.ModelInput(name=ROI_INPUT, data_type=mc.DataType.Value("TYPE_INT32"), dims=[4],
                                      optional=True))
    for output in metadata.outputs:
        config.output.append(mc.ModelOutput(name=output, data_type=fp32, dims=shapes[output]))
    prepare = config.ensemble_scheduling.step.add(model_name=f"{name}_preprocess", model_version=-1)
    prepare.input_map[FRAME_INPUT] = FRAME_INPUT
    prepare.input_map[ROI_INPUT] = ROI_INPUT
    prepare.output_map[INPUT_NAME] = "prepared_image"
    infer = config.ensemble_scheduling.step.add(model_name=name, model_version=-1)
    infer.input_map[INPUT_NAME] = "prepared_image"
    for output in metadata.outputs:
        infer.output_map[output] = output
    return config


#: The Python backend's model file: the implementation is cosa-edge's own, imported, never copied.
PREPROCESS_MODEL_PY = (
    '"""Triton Python backend: cosa-edge\'s preprocessing (cosa_edge/serve/triton_preprocess.py); needs cosa-edge '
    'installed in the server\'s Python."""\n'
    "from cosa_edge.serve.triton_preprocess import TritonPythonModel  # noqa: F401\n")


def config_text(config: ModelConfig) -> str:
    text_format = require("google.protobuf.text_format")
    return text_format.MessageToString(config)


def parse_config(text: str) -> ModelConfig:
    """A config.pbtxt read with Triton's schema; a field it does not know is an error."""
    mc = require("tritonclient.grpc.model_config_pb2")
    text_format = require("google.protobuf.text_format")
    try:
        return text_format.Parse(text, mc.ModelConfig())
    except text_format.ParseError as exc:
        raise CosaEdgeError(f"not a valid Triton model configuration: {exc}") from None


def model_folders(name: str, pipeline: bool = True) -> list[str]:
    """The repository folders export_triton writes for model ``name``: the model, and with ``pipeline`` its
    preprocessing model and the ensemble (named as preprocess_config and ensemble_config name them)."""
    return [name, f"{name}_preprocess", f"{name}_pipeline"] if pipeline else [name]


def export_triton(engine: Path, repo: Path, name: str = "cosa_edge", max_batch: int = 8, instances: int = 1,
                  kind: str = "cpu", overwrite: bool = False, triton_trt_version: str | None = None,
                  tensorrt_accelerator: bool = False, pipeline: bool = True) -> TritonExport:
    """Write ``engine`` as model ``name`` (version 1) into the model repository ``repo``, and with ``pipeline``
    the ensemble ``NAME_pipeline`` (raw frames in) with its preprocessing model ``NAME_preprocess``.

    Each model's folder is written beside its place and renamed into it at the end: an interrupted export
    leaves the repository's models as they were.
    """
    engine, repo = Path(engine), Path(repo)
    if not name or "/" in name or name.startswith("."):
        raise CosaEdgeError(f"--name {name!r} must be a plain folder name")
    metadata, backend, data = read_served_engine(engine, triton_trt_version)
    config = model_config(metadata, name, backend, max_batch, instances, kind, tensorrt_accelerator)
    text = config_text(config)
    parse_config(text)  # what is written must read back with Triton's schema
    model_name = RUNTIMES[backend].triton_file
    folders: dict[str, dict[str, bytes | str]] = {name: {"config.pbtxt": text, f"1/{model_name}": data,
        # Provenance beside the model (Triton ignores other files): which engine, and its hash.
        "cosa_edge.json": json.dumps({"engine": engine.name, "backend": backend, "precision": metadata.precision,
                                      "graph_sha256": metadata.graph_sha256,
                                      "intended_use": metadata.intended_use}, indent=2)}}
    if pipeline:
        for config, files in ((preprocess_config(metadata, name, instances), {"1/model.py": PREPROCESS_MODEL_PY}),
                              (ensemble_config(metadata, name), {"1/.keep": ""})):
            config_file = config_text(config)
            parse_config(config_file)
            folders[config.name] = {"config.pbtxt": config_file, **files}
    taken = [folder for folder in folders if (repo / folder).exists() and any((repo / folder).iterdir())]
    if taken and not overwrite:
        raise CosaEdgeError(f"{repo / taken[0]} already holds a model; give --overwrite to replace it, or another "
                            "--name")
    repo.mkdir(parents=True, exist_ok=True)
    for folder, files in folders.items():
        _write_model_folder(repo, folder, files)
    target = repo / name
    return TritonExport(target, target / "config.pbtxt", target / "1" / model_name, backend,
                        tuple(repo / folder for folder in folders if folder != name))


def _write_model_folder(repo: Path, folder: str, files: dict[str, bytes | str]) -> None:
    """Write one model's folder beside its place and rename it in: an interrupted export leaves the old one."""
    target = repo / folder
    staging = Path(tempfile.mkdtemp(dir=repo, prefix=f".{folder}."))
    try:
        for relative, content in files.items():
            path = staging / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                path.write_bytes(content)
            else:
                atomic_write_text(path, content)
        for path in (staging, *staging.rglob("*")):  # mkdtemp makes 0700: the server may run as another user
            if path.is_dir():
                path.chmod(0o777 & ~_umask())
        if target.exists():
            old = Path(tempfile.mkdtemp(dir=repo, prefix=f".{folder}.old."))
            os.replace(target, old / folder)
            os.replace(staging, target)
            shutil.rmtree(old)
        else:
            os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
