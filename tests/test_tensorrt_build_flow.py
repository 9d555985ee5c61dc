"""The TensorRT builder's own logic, run against a recording stand-in of TensorRT's builder.

What stands in: ``tensorrt`` (Builder, network, OnnxParser, builder config, timing cache: objects that record the
calls made on them and return a fixed "plan") and ``PycudaRuntime`` (a device name and compute capability). The
full TensorRT builder needs NVIDIA's package and a GPU, which CI has not (tests/test_tensorrt.py builds real plans
where they are). What is real: engines/tensorrt_build.py's control flow — the precision flags it sets for TensorRT
10 and 11, the optimisation profile, the timing cache read and written, the sidecar's record, and the order in
which the files reach the disk (the sidecar before the plan, so that no moment has a plan without its sidecar).
"""

from __future__ import annotations

import json
import os
import types
from pathlib import Path
from typing import Any

import pytest

from cosa_edge.contract import ModelMetadata
from cosa_edge.engines import tensorrt_build
from cosa_edge.engines.base import BatchRange, BuildOptions

PLAN = b"serialized plan bytes"


class Recorder:
    """Any attribute is a method that records its call and returns ``answers.get(name)``."""

    def __init__(self, log: list[tuple[str, tuple]], answers: dict[str, Any] | None = None) -> None:
        self._log, self._answers = log, answers or {}

    def __getattr__(self, name: str) -> Any:
        def call(*args: Any, **_kwargs: Any) -> Any:
            self._log.append((name, args))
            return self._answers.get(name)
        return call


def stand_in_tensorrt(version: str, log: list[tuple[str, tuple]]) -> types.ModuleType:
    trt = types.ModuleType("tensorrt")
    trt.__version__ = version
    trt.Logger = type("Logger", (), {"WARNING": 2, "__init__": lambda self, level: None})
    trt.MemoryPoolType = types.SimpleNamespace(WORKSPACE="WORKSPACE")
    trt.BuilderFlag = types.SimpleNamespace(INT8="INT8", FP16="FP16", OBEY_PRECISION_CONSTRAINTS="OBEY", TF32="TF32")
    cache = Recorder(log, {"serialize": b"timing cache"})
    config = Recorder(log, {"create_timing_cache": cache, "get_flag": True, "get_timing_cache": cache})
    network = Recorder(log)
    builder = Recorder(log, {"create_network": network, "create_builder_config": config,
                             "create_optimization_profile": Recorder(log), "build_serialized_network": PLAN})
    trt.Builder = lambda logger: builder
    trt.OnnxParser = lambda net, logger: Recorder(log, {"parse_from_file": True})
    return trt


@pytest.fixture
def written_order(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The file names the build writes, in order (through the atomic writers it uses)."""
    order: list[str] = []
    real_json, real_bytes = tensorrt_build.atomic_write_json, tensorrt_build.atomic_write_bytes

    def write_json(path: Path, value: Any) -> None:
        order.append(Path(path).name)
        real_json(path, value)

    def write_bytes(path: Path, value: bytes) -> None:
        order.append(Path(path).name)
        real_bytes(path, value)

    monkeypatch.setattr(tensorrt_build, "atomic_write_json", write_json)
    monkeypatch.setattr(tensorrt_build, "atomic_write_bytes", write_bytes)
    return order


def build_with(version: str, precision: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, list]:
    log: list[tuple[str, tuple]] = []
    monkeypatch.setitem(__import__("sys").modules, "tensorrt", stand_in_tensorrt(version, log))
    cuda = types.SimpleNamespace(device_name="Stand-in GPU", compute_capability=(9, 0), close=lambda: None)
    import cosa_edge.kernels.cuda as kernels_cuda

    monkeypatch.setattr(kernels_cuda, "PycudaRuntime", lambda: cuda)
    monkeypatch.setattr(tensorrt_build, "fp32_node_names", lambda model: [])
    # Which layers are pinned is tests/test_fp32_pinning.py's (on a real network); here only that it is called.
    monkeypatch.setattr(tensorrt_build, "pin_fp32_layers", lambda network, trt, names: 3)
    monkeypatch.setattr(tensorrt_build, "convert_to_fp16",
                        lambda source, destination: Path(destination).write_bytes(b""))
    onnx_path = tmp_path / "model.onnx"
    onnx_path.write_bytes(b"")  # the stand-in parser reads nothing
    metadata = ModelMetadata("mtl_cosa", "resnet18", 64)
    result = tensorrt_build.build_tensorrt(onnx_path, tmp_path / "model.engine", precision, metadata,
                                           BuildOptions(BatchRange(1, 4, 8), 1.5, None))
    return result, log


@pytest.mark.parametrize("version", ["10.13.0", "11.4.0"])
def test_the_sidecar_reaches_the_disk_before_the_plan(version: str, tmp_path: Path, written_order: list[str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    if version.startswith("10"):
        pytest.importorskip("onnx")
        monkeypatch.setattr("onnx.load", lambda path: None)
    result, _ = build_with(version, "fp16", tmp_path, monkeypatch)
    assert written_order == ["model.engine.json", "model.engine", "model.timing.cache"]
    assert (tmp_path / "model.engine").read_bytes() == PLAN
    record = json.loads((tmp_path / "model.engine.json").read_text())
    assert record["build"]["plan_sha256"] == result.details["plan_sha256"]
    assert record["build"]["profile"] == {"min": 1, "opt": 4, "max": 8} and record["build"]["workspace_gib"] == 1.5
    assert record["build"]["gpu"] == "Stand-in GPU" and record["build"]["compute_capability"] == [9, 0]
    assert json.loads(record["metadata"]["cosa_edge.precision"]) == "fp16"
    assert record["build"]["fp32_layers_pinned"] == (3 if version.startswith("10") else 0)
    assert not [name for name in os.listdir(tmp_path) if name.startswith(".")]  # no temporary left behind


def test_precision_flags_follow_the_tensorrt_version(tmp_path: Path, written_order: list[str],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("onnx")
    monkeypatch.setattr("onnx.load", lambda path: None)
    (tmp_path / "a").mkdir()
    _, log10 = build_with("10.13.0", "fp16", tmp_path / "a", monkeypatch)
    flags10 = [args[0] for name, args in log10 if name == "set_flag"]
    assert flags10 == ["FP16", "OBEY"]  # TensorRT 10: the FP16 flag, with FP32 layers obeyed
    (tmp_path / "b").mkdir()
    _, log11 = build_with("11.4.0", "fp16", tmp_path / "b", monkeypatch)
    assert [name for name, _ in log11 if name == "set_flag"] == []  # 11: strongly typed, the ONNX's types rule
    (tmp_path / "c").mkdir()
    _, log_int8 = build_with("10.13.0", "int8", tmp_path / "c", monkeypatch)
    assert [args[0] for name, args in log_int8 if name == "set_flag"] == ["INT8"]
    profile = [args for name, args in log11 if name == "set_shape"]
    assert profile == [("image", (1, 1, 64, 64), (4, 1, 64, 64), (8, 1, 64, 64))]
    workspace = [args for name, args in log11 if name == "set_memory_pool_limit"]
    assert workspace == [("WORKSPACE", int(1.5 * (1 << 30)))]
