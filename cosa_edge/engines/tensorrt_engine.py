"""The TensorRT backend: a serialized plan, pinned host and device buffers, a stream, execute_async_v3; and its
record. The builder is :mod:`.tensorrt_build` (it calls TensorRT's full bindings, an engine only the lean runtime).

Needs the ``tensorrt`` extra (tensorrt and pycuda) on an NVIDIA GPU. All CUDA
calls go through :class:`cosa_edge.kernels.cuda.PycudaRuntime`.
"""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path
from typing import Any

import numpy as np

from .._optional import require
from ..contract import INPUT_NAME, ModelMetadata
from ..errors import CosaEdgeError
from ..kernels.trt_compat import plugin_problem
from .artifact import Integrity, check_sha256, read_sidecar_json
from .base import Engine, Runtime, TensorSpec
from .int8_arithmetic import SYMMETRIC_SCHEME

from .tensorrt_build import NAME, build_tensorrt, sidecar_path
#: The Python modules a TensorRT build or engine needs: the bindings, and pycuda for its CUDA calls.
MODULES = ("tensorrt", "pycuda")


def read_sidecar(engine_path: Path) -> dict[str, Any]:
    path = sidecar_path(engine_path)
    if not path.is_file():
        raise CosaEdgeError(f"{engine_path} has no sidecar {path.name}; build engines with `cosa-edge build-engine`")
    return read_sidecar_json(path, "build the engine again with `cosa-edge build-engine`")


def check_compatible(build: dict[str, Any], trt_version: str, gpu_name: str, capability: tuple[int, int],
                     engine_path: Path) -> None:
    """An engine runs only on the TensorRT version and GPU model that built it (without compatibility flags)."""
    built_trt = build.get("tensorrt_version", "?")
    if not build.get("version_compatible") and built_trt != trt_version:
        raise CosaEdgeError(f"{engine_path} was built with TensorRT {built_trt} but this machine has {trt_version}; "
                            "rebuild it here with `cosa-edge build-engine`")
    recorded_cc = build.get("compute_capability", ())
    if not isinstance(recorded_cc, (list, tuple)):  # a damaged sidecar: said, not a TypeError
        raise CosaEdgeError(f"{engine_path}'s sidecar records no readable compute capability; rebuild it with "
                            "`cosa-edge build-engine`")
    built_cc = tuple(recorded_cc)
    if not build.get("hardware_compatible") and built_cc != capability:
        raise CosaEdgeError(f"{engine_path} was built for {build.get('gpu', '?')} (compute capability "
                            f"{'.'.join(map(str, built_cc))}) but this GPU is {gpu_name} "
                            f"({'.'.join(map(str, capability))}); rebuild it here with `cosa-edge build-engine`")


def check_plan(plan: bytes, sidecar: dict[str, Any], engine_path: Path) -> Integrity:
    """The plan's SHA-256 against the one its sidecar recorded at build time; a changed plan is refused."""
    recorded = sidecar.get("build", {}).get("plan_sha256", "")
    return check_sha256(hashlib.sha256(plan).hexdigest(), recorded, engine_path, "built",
                        "build it again with `cosa-edge build-engine`")


class TensorRTEngine(Engine):
    backend = NAME

    def __init__(self, path: Path, device: int = 0) -> None:
        trt = require("tensorrt")
        from ..kernels.cuda import PycudaRuntime

        path = Path(path)
        if not path.is_file():
            raise CosaEdgeError(f"engine {path} does not exist")
        sidecar = read_sidecar(path)
        metadata = ModelMetadata.from_props(sidecar.get("metadata", {}), str(sidecar_path(path)))
        # Read once and checked before anything runs; the same bytes are deserialised below.
        plan = path.read_bytes()
        self.integrity = check_plan(plan, sidecar, path)
        self.cuda = PycudaRuntime(device)
        check_compatible(sidecar.get("build", {}), trt.__version__, self.cuda.device_name, self.cuda.compute_capability,
                         path)
        if metadata.cosa_op == "plugin" and not sidecar.get("build", {}).get("plugin_aot", False):
            from ..kernels import trt_plugin  # noqa: F401  (registers the Python implementation before deserialising)

        self._trt = trt
        self.logger = trt.Logger(trt.Logger.WARNING)
        self.runtime = trt.Runtime(self.logger)
        engine = self.runtime.deserialize_cuda_engine(plan)
        if engine is None:
            raise CosaEdgeError(f"TensorRT could not deserialise {path}: it is corrupt or was built by another "
                                "TensorRT version or for another GPU; rebuild it with `cosa-edge build-engine`")
        super().__init__(path, metadata)
        self.engine = engine
        self.context = engine.create_execution_context()
        self.names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        self.input_names = [n for n in self.names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.output_names = [n for n in self.names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        if self.input_names != [INPUT_NAME]:
            raise CosaEdgeError(f"{path} has inputs {self.input_names}; a cosa-edge engine has the one input "
                                f"'{INPUT_NAME}'")
        smallest, _, largest = engine.get_tensor_profile_shape(INPUT_NAME, 0)  # (min, opt, max) shapes
        self.min_batch, self.max_batch = int(smallest[0]), int(largest[0])
        # Buffers for the largest batch of the profile, allocated once: no allocation on the hot path.
        self.host: dict[str, np.ndarray] = {}
        self.device_buffers: dict[str, Any] = {}
        for name in self.names:
            dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(name)))
            shape = (self.max_batch, *[int(d) for d in engine.get_tensor_shape(name)[1:]])
            self.host[name] = self.cuda.pinned(shape, dtype)
            self.device_buffers[name] = self.cuda.device_buffer(self.host[name].nbytes)
            self.context.set_tensor_address(name, int(self.device_buffers[name]))
        self.events = [self.cuda.event() for _ in range(4)]

    def _spec(self, name: str) -> TensorSpec:
        shape = tuple("batch" if i == 0 else int(d) for i, d in enumerate(self.engine.get_tensor_shape(name)))
        return TensorSpec(name, shape, str(np.dtype(self._trt.nptype(self.engine.get_tensor_dtype(name)))))

    @property
    def inputs(self) -> list[TensorSpec]:
        return [self._spec(n) for n in self.input_names]

    @property
    def outputs(self) -> list[TensorSpec]:
        return [self._spec(n) for n in self.output_names]

    def _infer(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        n = batch.shape[0]
        if not self.min_batch <= n <= self.max_batch:
            raise CosaEdgeError(f"{self.path.name} was built for batches of {self.min_batch} to {self.max_batch}; "
                                f"got {n}")
        self.context.set_input_shape(INPUT_NAME, batch.shape)
        host_in = self.host[INPUT_NAME]
        host_in[:n] = batch.astype(host_in.dtype, copy=False)
        start, uploaded, computed, done = self.events
        stream = self.cuda.stream
        start.record(stream)
        self.cuda.upload(self.device_buffers[INPUT_NAME], host_in[:n])
        uploaded.record(stream)
        if not self.context.execute_async_v3(stream.handle):
            raise CosaEdgeError(f"TensorRT failed to run {self.path.name}")
        computed.record(stream)
        for name in self.output_names:
            self.cuda.download(self.host[name][:n], self.device_buffers[name])
        done.record(stream)
        done.synchronize()
        self.last_times.stages = {"host_to_device": uploaded.time_since(start),
                                  "compute": computed.time_since(uploaded),
                                  "device_to_host": done.time_since(computed)}
        return {name: self.host[name][:n].astype(np.float32) for name in self.output_names}

    def close(self) -> None:
        self.cuda.close()


def missing_modules() -> list[str]:
    """Which of :data:`MODULES` are not installed."""
    return [name for name in MODULES if importlib.util.find_spec(name) is None]


def _plugin_problem() -> str | None:
    import numpy

    trt = require("tensorrt")
    return plugin_problem(trt.__version__, numpy.__version__, importlib.util.find_spec("tensorrt.plugin") is not None)


RUNTIME = Runtime(
    name=NAME, label="TensorRT", open=TensorRTEngine, suffixes=(".engine", ".plan", ".trt"),
    default_file="model.engine", build=build_tensorrt, precisions=("fp16", "fp32", "int8"), default_precision="fp16",
    sidecar=True, takes_threads=False, timing_cache=True, int8_scheme=SYMMETRIC_SCHEME, int8_engine="plan",
    plugin_problem=_plugin_problem,
    triton_file="model.plan", gpu_only=True)
