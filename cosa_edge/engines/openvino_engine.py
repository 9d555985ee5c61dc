"""The OpenVINO backend: an OpenVINO IR model (``NAME.xml`` + ``NAME.bin``) with a JSON sidecar.

Built from the FP32 export (FP32) or from the INT8 QDQ graph of :mod:`cosa_edge.engines.int8`
(INT8: OpenVINO turns the QuantizeLinear/DequantizeLinear pairs into its own low-precision
layers). The sidecar ``NAME.xml.json`` carries the cosa-edge metadata, the OpenVINO version that
built the model and the SHA-256 of both files, which the loader checks, as it checks every
engine. FP32 models run with OpenVINO's inference precision pinned to f32: on CPUs with bf16
units OpenVINO would otherwise lower FP32 layers to bf16 by itself.

Needs the ``openvino`` extra; no torch.
"""

from __future__ import annotations

import hashlib
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from .._optional import require
from ..contract import INPUT_NAME, ModelMetadata
from ..errors import CosaEdgeError
from ..fileio import atomic_write_json
from .artifact import Integrity, check_sha256, read_sidecar_json, read_verified_onnx
from .base import BuildOptions, BuildResult, Engine, Runtime, TensorSpec
from .int8_arithmetic import ASYMMETRIC_SCHEME, warn_if_checked_on_another_cpu

NAME = "openvino"
SUFFIX = ".xml"


def sidecar_path(model_path: Path) -> Path:
    return Path(str(model_path) + ".json")


def weights_path(model_path: Path) -> Path:
    return Path(model_path).with_suffix(".bin")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def release(version: str) -> str:
    """OpenVINO's release (year.minor) from a full version string such as 2026.4.1-22982-abc."""
    return ".".join(version.split("-")[0].split(".")[:2])


def build_openvino(onnx_path: Path, output: Path, metadata: ModelMetadata, precision: str,
                   extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Convert an ONNX model (FP32, or INT8 QDQ) into OpenVINO IR at ``output`` (.xml) with its .bin and sidecar.

    The three files are written beside the output under temporary names and renamed into place at the end,
    the sidecar last: a failed build leaves no model that would load.
    """
    ov = require("openvino")
    output = Path(output)
    if output.suffix.lower() != SUFFIX:
        raise CosaEdgeError(f"an OpenVINO model is an .xml file (with its .bin beside it); name the output "
                            f"{output.with_suffix(SUFFIX)}")
    read_verified_onnx(onnx_path)  # a changed model is refused before it is converted
    started = time.perf_counter()
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=output.parent, prefix=f".{output.stem}.") as tmp:
        xml, binary = Path(tmp) / f"{output.stem}.xml", Path(tmp) / f"{output.stem}.bin"
        try:
            model = ov.convert_model(str(onnx_path))
            ov.save_model(model, str(xml), compress_to_fp16=False)  # the precision is the source's, not FP16
        except Exception as exc:  # OpenVINO raises its own exception types from C++
            raise CosaEdgeError(f"OpenVINO could not convert {Path(onnx_path).name}: {exc}") from None
        build = {"openvino_version": ov.get_version(), "precision": precision,
                 "xml_sha256": _sha256(xml), "bin_sha256": _sha256(binary),
                 "source_graph_sha256": metadata.graph_sha256, "host": platform.node(),
                 "cosa_edge_version": __version__, "seconds": round(time.perf_counter() - started, 2), **(extra or {})}
        os.replace(binary, weights_path(output))
        os.replace(xml, output)
    atomic_write_json(sidecar_path(output), {"metadata": metadata.with_changes(precision=precision).to_props(),
                                             "build": build})
    return build


def read_sidecar(path: Path) -> dict[str, Any]:
    sidecar = sidecar_path(path)
    if not sidecar.is_file():
        raise CosaEdgeError(f"{path} has no sidecar {sidecar.name}; build OpenVINO models with "
                            "`cosa-edge build-engine --target openvino`")
    return read_sidecar_json(sidecar, "build it again with `cosa-edge build-engine --target openvino`")


def check_files(path: Path, build: dict[str, Any]) -> Integrity:
    """Both files' SHA-256 against the sidecar's; a changed model or weights file is refused."""
    remedy = "build it again with `cosa-edge build-engine --target openvino`"
    binary = weights_path(path)
    if not binary.is_file():
        raise CosaEdgeError(f"{path} has no weights file {binary.name} beside it; copy both files, or {remedy}")
    check_sha256(_sha256(binary), build.get("bin_sha256", ""), binary, "built", remedy)
    return check_sha256(_sha256(path), build.get("xml_sha256", ""), path, "built", remedy)


def check_version(build: dict[str, Any], installed: str, path: Path) -> None:
    """A model runs on the OpenVINO release that built it: another release may read it differently or not at all."""
    built = build.get("openvino_version", "?")
    if not isinstance(built, str):  # a damaged sidecar (found by fuzzing): said, not an AttributeError
        raise CosaEdgeError(f"{sidecar_path(path)} records no readable OpenVINO version; build it again with "
                            "`cosa-edge build-engine --target openvino`")
    if release(built) != release(installed):
        raise CosaEdgeError(f"{path} was built with OpenVINO {release(built)} but this machine has "
                            f"{release(installed)}; build it again here with `cosa-edge build-engine --target "
                            f"openvino` (or install openvino=={release(built)}.*)")


class OpenVinoEngine(Engine):
    backend = NAME

    def __init__(self, path: Path, threads: int | None = None) -> None:
        ov = require("openvino")
        path = Path(path)
        if not path.is_file():
            raise CosaEdgeError(f"engine {path} does not exist")
        sidecar = read_sidecar(path)
        build = sidecar.get("build", {})
        metadata = ModelMetadata.from_props(sidecar.get("metadata", {}), str(sidecar_path(path)))
        check_version(build, ov.get_version(), path)
        self.integrity = check_files(path, build)
        config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY"}
        if metadata.precision == "fp32":
            config["INFERENCE_PRECISION_HINT"] = "f32"
        if threads:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        core = ov.Core()
        try:
            # Read from memory: the bytes compiled are the bytes whose hashes were just checked.
            model = core.read_model(path.read_bytes(), ov.Tensor(np.fromfile(weights_path(path), np.uint8)))
            self.compiled = core.compile_model(model, "CPU", config)
        except Exception as exc:
            raise CosaEdgeError(f"OpenVINO could not load {path}: {exc}; build it again with "
                                "`cosa-edge build-engine --target openvino`") from None
        super().__init__(path, metadata)
        warn_if_checked_on_another_cpu(metadata, path)
        names = [port.get_any_name() for port in self.compiled.inputs]
        if names != [INPUT_NAME]:
            raise CosaEdgeError(f"{path} has inputs {names}; a cosa-edge engine has the one input '{INPUT_NAME}'")
        self.output_names = [port.get_any_name() for port in self.compiled.outputs]
        self.request = self.compiled.create_infer_request()

    @staticmethod
    def _spec(port: Any) -> TensorSpec:
        shape = tuple(int(d.get_length()) if d.is_static else "batch" for d in port.get_partial_shape())
        return TensorSpec(port.get_any_name(), shape, str(port.get_element_type()))

    @property
    def inputs(self) -> list[TensorSpec]:
        return [self._spec(port) for port in self.compiled.inputs]

    @property
    def outputs(self) -> list[TensorSpec]:
        return [self._spec(port) for port in self.compiled.outputs]

    def _infer(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        started = time.perf_counter()
        self.request.infer({INPUT_NAME: batch})
        values = [self.request.get_output_tensor(i).data for i in range(len(self.output_names))]
        self.last_times.stages = {"compute": (time.perf_counter() - started) * 1000.0}
        # Copies: OpenVINO reuses its output buffers on the next call.
        return {name: np.array(value, dtype=np.float32) for name, value in zip(self.output_names, values)}


def _build(onnx_path: Path, output: Path, precision: str, metadata: ModelMetadata,
           options: BuildOptions = BuildOptions()) -> BuildResult:
    return BuildResult(Path(output), NAME, precision, build_openvino(onnx_path, output, metadata, precision))


RUNTIME = Runtime(
    name=NAME, label="OpenVINO", open=OpenVinoEngine, suffixes=(SUFFIX,), default_file="model.xml", build=_build,
    precisions=("fp32", "int8"), default_precision="fp32", sidecar=True, companions=(".bin",),
    # OpenVINO reads the QDQ graph that ONNX Runtime's scheme writes (unsigned activations, asymmetric).
    int8_scheme=ASYMMETRIC_SCHEME, int8_engine="converted",
    plugin_problem=lambda: "OpenVINO has no kernel for the COSA plugin node")
