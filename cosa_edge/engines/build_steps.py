"""The steps every engine build shares, whatever its runtime and precision (build.py puts them together).

The source is verified and its metadata read; a plugin export is rewritten in standard ops where the runtime
cannot run the plugin; the engine is built in a staging folder beside its destination and only moved into place,
sidecars first, once built and checked.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .._optional import require
from ..contract import ModelMetadata
from ..errors import CosaEdgeError
from .artifact import read_verified_onnx, write_model_with_metadata
from .base import BuildOptions, BuildResult, Runtime
from .plugin_fallback import replace_plugin_nodes
from .runtimes import RUNTIMES, TENSORRT, runtime_named
from .tensorrt_engine import missing_modules as missing_tensorrt_modules

#: The runtimes build-engine can build for.
TARGETS = tuple(name for name, runtime in RUNTIMES.items() if runtime.build is not None)


def read_onnx_metadata(path: Path) -> ModelMetadata:
    onnx = require("onnx")
    if not Path(path).is_file():
        raise CosaEdgeError(f"ONNX model {path} does not exist")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError and friends for a corrupt file
        raise CosaEdgeError(f"{path} is not a readable ONNX model ({type(exc).__name__}); export it again") from None
    return ModelMetadata.from_props({p.key: p.value for p in model.metadata_props}, str(path))


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
    from .runtimes import engine_files

    pairs = list(zip(engine_files(staged_engine), engine_files(output)))
    for source, destination in pairs[1:] + pairs[:1]:
        if source.exists():
            os.replace(source, destination)


def build_into(onnx_path: Path, output: Path, runtime: Runtime, precision: str, options: BuildOptions) -> BuildResult:
    """Build ``runtime``'s engine at ``output`` (a staged path) from a verified FP32 export, or a TensorRT plan from
    a TensorRT-ready INT8 QDQ graph; what cannot be built raises before anything is written."""
    assert runtime.build is not None  # TARGETS holds only runtimes with a builder
    if runtime is TENSORRT and (missing := missing_tensorrt_modules()):
        raise CosaEdgeError(f"TensorRT engines need {' and '.join(missing)}, which this machine lacks; on an NVIDIA "
                            "GPU machine: pip install 'cosa-edge[tensorrt]' (or use --target onnxruntime)")
    metadata = read_onnx_metadata(onnx_path)
    read_verified_onnx(onnx_path)  # a changed export is refused before anything is built from it
    if runtime is TENSORRT and metadata.precision == "int8" and precision == "int8":
        if target_of(metadata) != runtime.int8_scheme:
            raise CosaEdgeError(f"{onnx_path} is quantized for {target_of(metadata)}, not for TensorRT (which needs "
                                "symmetric INT8); build from the FP32 export with "
                                f"--target {TENSORRT.name} --precision int8")
        return runtime.build(onnx_path, output, precision, metadata, options)
    if precision == "int8" and metadata.precision == "fp32":
        raise CosaEdgeError("INT8 engines are calibrated and checked before they are written: use "
                            "`cosa-edge build-engine --precision int8 --calib-data SPEC` "
                            "(cosa_edge.engines.build.build_engine with an Int8Recipe)")
    if precision not in runtime.precisions:
        choices = " or ".join(runtime.precisions)
        raise CosaEdgeError(f"{runtime.label} engines are built in {choices}, not {precision!r}; use --precision "
                            f"{choices}")
    if metadata.precision != "fp32":
        raise CosaEdgeError(f"{onnx_path} is already {metadata.precision}; build from the FP32 export")
    with tempfile.TemporaryDirectory() as tmp:
        notes: list[str] = []
        reason = runtime.plugin_problem() if metadata.cosa_op == "plugin" else None
        if reason:
            onnx_path = standard_ops_copy(onnx_path, Path(tmp) / "standard.onnx")
            metadata = metadata.with_changes(cosa_op="onnx")
            notes.append(f"{reason}; building from the standard export instead (the plugin node rewritten as "
                         "standard ONNX ops, which compute the same region maps)")
        result = runtime.build(onnx_path, output, precision, metadata, options)
    return BuildResult(result.engine, result.target, result.precision, result.details, tuple(notes))


def target_of(metadata: ModelMetadata) -> str:
    """The runtime an INT8 model's scheme was made for, from its metadata."""
    return (metadata.quantization.get("scheme") or {}).get("name", "an unknown runtime")


def plugin_unavailable(target: str) -> str | None:
    """Why ``target`` cannot run the COSA plugin node here, or None where it can."""
    return runtime_named(target).plugin_problem()


def standard_ops_copy(onnx_path: Path, destination: Path) -> Path:
    """A copy of a `--cosa-op plugin` export with the plugin node in standard ops (see plugin_fallback)."""
    onnx = require("onnx")
    model = onnx.load_from_string(read_verified_onnx(onnx_path))  # a changed model is refused, not re-hashed
    replace_plugin_nodes(model)
    metadata = ModelMetadata.from_props({p.key: p.value for p in model.metadata_props}, str(onnx_path))
    write_model_with_metadata(model, metadata.with_changes(cosa_op="onnx"), destination)  # a new graph, a new hash
    return destination
