"""TensorRT paths (marker `trt`): run wherever TensorRT, pycuda and a GPU are present."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cosa_edge.data.phantom import make_phantom_dataset
from cosa_edge.backends import open_engine
from cosa_edge.engines.build import BatchRange, build_engine
from cosa_edge.errors import CosaEdgeError
from cosa_edge.evaluation.comparison import check_fp16_fidelity

pytestmark = [pytest.mark.trt, pytest.mark.gpu]


@pytest.mark.parametrize("precision", ["fp16", "fp32"])
def test_tensorrt_engine_matches_the_fp32_model(exported_onnx: Path, tmp_path: Path, precision: str) -> None:
    result = build_engine(exported_onnx, tmp_path / "m.engine", target="tensorrt", precision=precision,
                          batch=BatchRange(1, 4, 8))
    sidecar = json.loads((tmp_path / "m.engine.json").read_text())
    assert sidecar["build"]["precision"] == precision and sidecar["build"]["profile"] == {"min": 1, "opt": 4, "max": 8}
    assert (tmp_path / "m.timing.cache").stat().st_size > 0
    with open_engine(exported_onnx) as reference, open_engine(result.engine) as engine:
        agreement = check_fp16_fidelity(reference, engine, make_phantom_dataset(16, seed=3, size=(64, 64)))
        assert {"host_to_device", "compute", "device_to_host"} <= set(engine.last_times.stages)
        with pytest.raises(CosaEdgeError, match="batches of 1 to 8"):
            engine.infer(__import__("numpy").zeros((9, 1, 64, 64), "float32"))
    assert agreement.same_class == 1.0


def test_engine_from_another_tensorrt_version_is_refused(exported_onnx: Path, tmp_path: Path) -> None:
    build_engine(exported_onnx, tmp_path / "m.engine", target="tensorrt", precision="fp16")
    sidecar_file = tmp_path / "m.engine.json"
    sidecar = json.loads(sidecar_file.read_text())
    sidecar["build"]["tensorrt_version"] = "9.0.0"
    sidecar_file.write_text(json.dumps(sidecar))
    with pytest.raises(CosaEdgeError, match="built with TensorRT 9.0.0"):
        open_engine(tmp_path / "m.engine")


def test_plugin_engine_runs_the_cuda_kernel(trained_checkpoint: Path, exported_onnx: Path, tmp_path: Path) -> None:
    from cosa_edge.export.onnx_export import export_onnx

    export_onnx(trained_checkpoint, tmp_path / "plugin.onnx", cosa_op="plugin")
    result = build_engine(tmp_path / "plugin.onnx", tmp_path / "plugin.engine", target="tensorrt", precision="fp32")
    with open_engine(exported_onnx) as reference, open_engine(result.engine) as engine:
        agreement = check_fp16_fidelity(reference, engine, make_phantom_dataset(16, seed=4, size=(64, 64)))
    assert agreement.same_class == 1.0 and agreement.max_probability_difference < 1e-3
