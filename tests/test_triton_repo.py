"""`cosa-edge export-triton`: the written model repository, read back with Triton's own schema.

Real: tritonclient's model_config_pb2 and protobuf's text format, the conftest's ONNX export and ONNX Runtime
(to compare the configuration with the engine). No Triton server runs here. The TensorRT plan is a stand-in
(bytes with a sidecar that records their hash), since no TensorRT can build one on this machine.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

pytest.importorskip("tritonclient.grpc.model_config_pb2")

from cosa_edge.cli import cli
from cosa_edge.backends import open_engine
from cosa_edge.errors import CosaEdgeError
from cosa_edge.serve.triton_repo import export_triton, parse_config


def test_the_repository_s_config_reads_back_with_triton_s_schema_and_fits_the_engine(exported_onnx: Path,
                                                                                    tmp_path: Path) -> None:
    result = export_triton(exported_onnx, tmp_path / "repo", max_batch=8, instances=2)
    assert result.model_file == tmp_path / "repo" / "cosa_edge" / "1" / "model.onnx"
    assert result.model_file.read_bytes() == exported_onnx.read_bytes()
    config = parse_config(result.config.read_text())
    with open_engine(exported_onnx) as engine:
        size = engine.input_size
        outputs = {spec.name: spec for spec in engine.outputs}
        metadata = engine.metadata
    assert (config.name, config.backend, config.max_batch_size) == ("cosa_edge", "onnxruntime", 8)
    assert [(i.name, list(i.dims)) for i in config.input] == [("image", [1, size, size])]
    # Every engine output, with its shape less the batch dimension that max_batch_size stands for.
    assert {o.name: list(o.dims) for o in config.output} == {
        name: [int(d) for d in spec.shape[1:]] for name, spec in outputs.items()}
    assert {o.data_type for o in config.output} == {config.input[0].data_type}
    assert config.input[0].data_type == 11  # FP32
    assert list(config.dynamic_batching.preferred_batch_size) == [2, 4, 8]
    assert config.dynamic_batching.max_queue_delay_microseconds > 0
    assert [(g.count, g.kind) for g in config.instance_group] == [(2, 2)]  # KIND_CPU
    assert config.model_warmup[0].batch_size == 1
    assert list(config.model_warmup[0].inputs["image"].dims) == [1, size, size]
    parameters = {k: v.string_value for k, v in config.parameters.items()}
    assert json.loads(parameters["cosa_edge.graph_sha256"]) == metadata.graph_sha256
    assert json.loads(parameters["cosa_edge.intended_use"]) == metadata.intended_use
    assert "cosa_edge.model_card" not in parameters  # long texts stay in the model file


def test_a_misspelt_field_or_value_fails_to_parse(exported_onnx: Path, tmp_path: Path) -> None:
    text = export_triton(exported_onnx, tmp_path / "repo").config.read_text()
    parse_config(text)
    with pytest.raises(CosaEdgeError, match="not a valid Triton model configuration"):
        parse_config(text.replace("max_batch_size", "max_batch_sise"))
    with pytest.raises(CosaEdgeError, match="not a valid Triton model configuration"):
        parse_config(text.replace("KIND_CPU", "KIND_TPU"))


def test_a_model_already_there_is_kept_unless_overwrite(exported_onnx: Path, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    export_triton(exported_onnx, repo, max_batch=4)
    with pytest.raises(CosaEdgeError, match="already holds a model; give --overwrite"):
        export_triton(exported_onnx, repo, max_batch=8)
    assert parse_config((repo / "cosa_edge" / "config.pbtxt").read_text()).max_batch_size == 4
    export_triton(exported_onnx, repo, max_batch=8, overwrite=True)
    assert parse_config((repo / "cosa_edge" / "config.pbtxt").read_text()).max_batch_size == 8
    # The three models and no staging folder left behind.
    assert sorted(p.name for p in repo.iterdir()) == ["cosa_edge", "cosa_edge_pipeline", "cosa_edge_preprocess"]


def _stand_in_plan(tmp_path: Path, exported_onnx: Path, tensorrt_version: str = "10.9.0") -> Path:
    """Bytes standing in for a plan, with the sidecar `cosa-edge build-engine` writes (its hash and metadata)."""
    plan = tmp_path / "model.engine"
    plan.write_bytes(b"stand-in plan bytes")
    with open_engine(exported_onnx) as engine:
        props = engine.metadata.to_props()
    sidecar = {"metadata": props, "build": {"tensorrt_version": tensorrt_version,
                                            "plan_sha256": hashlib.sha256(plan.read_bytes()).hexdigest()}}
    Path(str(plan) + ".json").write_text(json.dumps(sidecar))
    return plan


def test_a_tensorrt_plan_is_served_by_the_tensorrt_backend_on_gpus_of_its_own_version(exported_onnx: Path,
                                                                                       tmp_path: Path) -> None:
    plan = _stand_in_plan(tmp_path, exported_onnx)
    result = export_triton(plan, tmp_path / "repo", kind="gpu", triton_trt_version="10.9.0")
    config = parse_config(result.config.read_text())
    assert result.model_file.name == "model.plan" and config.backend == "tensorrt"
    assert config.instance_group[0].kind == 1  # KIND_GPU
    with pytest.raises(CosaEdgeError, match="built with TensorRT 10.9.0.*has TensorRT 10.3.0"):
        export_triton(plan, tmp_path / "repo2", kind="gpu", triton_trt_version="10.3.0")
    with pytest.raises(CosaEdgeError, match="a TensorRT plan runs on a GPU"):
        export_triton(plan, tmp_path / "repo3", kind="cpu")
    plan.write_bytes(b"changed")
    with pytest.raises(CosaEdgeError, match="has been changed since it was built"):
        export_triton(plan, tmp_path / "repo4", kind="gpu")
    assert not (tmp_path / "repo2").exists() and not (tmp_path / "repo4").exists()


def test_the_tensorrt_accelerator_and_refusals(exported_onnx: Path, tmp_path: Path) -> None:
    config = parse_config(export_triton(exported_onnx, tmp_path / "repo", kind="gpu",
                                        tensorrt_accelerator=True).config.read_text())
    accelerator = config.optimization.execution_accelerators.gpu_execution_accelerator[0]
    assert accelerator.name == "tensorrt" and accelerator.parameters["precision_mode"] == "FP16"
    with pytest.raises(CosaEdgeError, match="for an ONNX model served on GPUs"):
        export_triton(exported_onnx, tmp_path / "repo2", kind="cpu", tensorrt_accelerator=True)
    with pytest.raises(CosaEdgeError, match="does not exist"):
        export_triton(tmp_path / "missing.onnx", tmp_path / "repo3")
    openvino_model = tmp_path / "model.xml"
    openvino_model.write_text("<net/>")
    with pytest.raises(CosaEdgeError, match="Triton serves ONNX models"):
        export_triton(openvino_model, tmp_path / "repo3")


def test_the_command_line(exported_onnx: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["export-triton", str(exported_onnx), "--repo", str(tmp_path / "repo"),
                                      "--name", "busi", "--max-batch", "4"])
    assert result.exit_code == 0, result.output
    assert parse_config((tmp_path / "repo" / "busi" / "config.pbtxt").read_text()).name == "busi"
    again = CliRunner().invoke(cli, ["export-triton", str(exported_onnx), "--repo", str(tmp_path / "repo"),
                                     "--name", "busi"])
    assert again.exit_code != 0 and "--overwrite" in again.output and "Traceback" not in again.output


def test_the_pipeline_ensemble_takes_frames_through_cosa_edge_s_own_preprocessing(exported_onnx: Path,
                                                                                 tmp_path: Path) -> None:
    result = export_triton(exported_onnx, tmp_path / "repo", name="m")
    preprocess_dir, pipeline_dir = result.pipeline_dirs
    preprocess = parse_config((preprocess_dir / "config.pbtxt").read_text())
    ensemble = parse_config((pipeline_dir / "config.pbtxt").read_text())
    model = parse_config(result.config.read_text())
    size = int(preprocess.parameters["input_size"].string_value)
    assert (preprocess.name, preprocess.backend) == ("m_preprocess", "python") and size == model.input[0].dims[1]
    assert [(i.name, list(i.dims), i.optional) for i in preprocess.input] == [("frame", [-1, -1, -1], False),
                                                                              ("roi", [4], True)]
    assert [(o.name, list(o.dims)) for o in preprocess.output] == [("image", [1, 1, size, size])]
    # The ensemble: frame and ROI into the preprocessing model, its image into the model, the model's outputs out.
    assert ensemble.platform == "ensemble" and ensemble.name == "m_pipeline"
    first, second = ensemble.ensemble_scheduling.step
    assert first.model_name == "m_preprocess" and dict(first.input_map) == {"frame": "frame", "roi": "roi"}
    assert second.model_name == "m" and dict(second.input_map) == {"image": first.output_map["image"]}
    assert set(second.output_map) == {o.name for o in model.output} == {o.name for o in ensemble.output}
    # Full shapes (the ensemble does not batch): one frame's outputs, batch dimension 1 first.
    assert {o.name: list(o.dims) for o in ensemble.output} == {o.name: [1, *o.dims] for o in model.output}
    # The Python backend's model file imports cosa-edge's implementation; it copies none of it.
    source = (preprocess_dir / "1" / "model.py").read_text()
    assert "from cosa_edge.serve.triton_preprocess import TritonPythonModel" in source and "resize" not in source
    assert (pipeline_dir / "1").is_dir()  # Triton wants a version folder for an ensemble too
    bare = export_triton(exported_onnx, tmp_path / "bare", pipeline=False)
    assert bare.pipeline_dirs == () and sorted(p.name for p in (tmp_path / "bare").iterdir()) == ["cosa_edge"]


class _StandInBackendUtils:
    """Stands in for triton_python_backend_utils, which only Triton's Python backend provides: tensors by name,
    responses that hold output tensors or an error. The model under test is the real TritonPythonModel."""

    class Tensor:
        def __init__(self, name: str, value: np.ndarray) -> None:
            self.name, self.value = name, value

        def as_numpy(self) -> np.ndarray:
            return self.value

    class TritonError:
        def __init__(self, message: str) -> None:
            self.message = message

    class InferenceResponse:
        def __init__(self, output_tensors: list, error: object = None) -> None:
            self.output_tensors, self.error = output_tensors, error

    @staticmethod
    def get_input_tensor_by_name(request: dict, name: str) -> object:
        return request.get(name)


def test_the_preprocessing_model_gives_the_engine_s_input_and_answers_a_bad_frame_with_an_error(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from cosa_edge.data import resize_grey
    from cosa_edge.serve.triton_preprocess import TritonPythonModel

    utils = _StandInBackendUtils
    monkeypatch.setitem(sys.modules, "triton_python_backend_utils", utils)
    model = TritonPythonModel()
    model.initialize({"model_config": json.dumps({"parameters": {"input_size": {"string_value": "64"}}})})
    rng = np.random.default_rng(0)
    colour = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
    grey = rng.integers(0, 255, (90, 100, 1), dtype=np.uint8)
    requests = [{"frame": utils.Tensor("frame", colour)},
                {"frame": utils.Tensor("frame", colour),
                 "roi": utils.Tensor("roi", np.array([10, 20, 100, 80], np.int32))},
                {"frame": utils.Tensor("frame", grey)},
                {"frame": utils.Tensor("frame", colour.astype(np.float32))},  # wrong type
                {"frame": utils.Tensor("frame", colour), "roi": utils.Tensor("roi", np.array([0, 0, 0, 5], np.int32))}]
    responses = model.execute(requests)
    assert len(responses) == len(requests)
    expected = [resize_grey(colour, 64), resize_grey(colour, 64, (10, 20, 100, 80)), resize_grey(grey[:, :, 0], 64)]
    for response, want in zip(responses[:3], expected):
        assert response.error is None and response.output_tensors[0].name == "image"
        got = response.output_tensors[0].as_numpy()
        assert got.shape == (1, 1, 64, 64) and got.dtype == np.float32
        np.testing.assert_array_equal(got[0, 0], want.astype(np.float32))
    assert "must be UINT8" in responses[3].error.message and responses[3].output_tensors == []
    assert "positive width and height" in responses[4].error.message
