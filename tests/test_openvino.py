"""OpenVINO engines: built from the export (FP32) and from the INT8 QDQ graph, opened behind the same interface,
their files and version checked. Real OpenVINO (the ``openvino`` extra) on this CPU."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

pytest.importorskip("openvino")
pytest.importorskip("onnxruntime")

from cosa_edge.cli import cli
from cosa_edge.contract import CLASS_OUTPUT, LESION_OUTPUT, stack_frames
from cosa_edge.data import resize_grey
from cosa_edge.data.phantom import make_phantom_dataset
from cosa_edge.backends import open_engine
from cosa_edge.engines.build import build_engine
from cosa_edge.engines.openvino_engine import sidecar_path, weights_path
from cosa_edge.errors import CosaEdgeError


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    return stack_frames([resize_grey(s.image, 64) for s in make_phantom_dataset(6, seed=23, size=(64, 64))])


@pytest.fixture(scope="module")
def fp32_model(exported_onnx: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    output = tmp_path_factory.mktemp("openvino") / "model.xml"
    build_engine(exported_onnx, output, target="openvino", precision="fp32")
    return output


def test_an_fp32_openvino_engine_gives_the_onnx_model_s_answers(fp32_model: Path, exported_onnx: Path,
                                                                frames: np.ndarray) -> None:
    with open_engine(fp32_model) as engine, open_engine(exported_onnx) as reference:
        assert engine.backend == "openvino" and engine.metadata.precision == "fp32"
        assert engine.integrity is not None and engine.integrity.verified
        assert [s.name for s in engine.inputs] == ["image"]
        got, want = engine.infer(frames), reference.infer(frames)
        assert set(got) == set(want)
        for name in (LESION_OUTPUT, CLASS_OUTPUT):
            np.testing.assert_allclose(got[name], want[name], atol=1e-4)
        one = engine.infer(frames[:1])  # the batch dimension stays dynamic
        np.testing.assert_allclose(one[CLASS_OUTPUT], want[CLASS_OUTPUT][:1], atol=1e-4)
    assert weights_path(fp32_model).is_file() and sidecar_path(fp32_model).is_file()


def test_an_int8_openvino_engine_is_built_checked_and_recorded(exported_onnx: Path, tmp_path: Path) -> None:
    output = tmp_path / "model.int8.xml"
    result = CliRunner().invoke(cli, ["build-engine", str(exported_onnx), "-o", str(output), "--target", "openvino",
                                      "--precision", "int8", "--calib-data", "phantom:40", "--calib-count", "24",
                                      "--accept-accuracy-loss"])
    assert result.exit_code == 0, result.output
    with open_engine(output) as engine:
        assert engine.metadata.precision == "int8"
        check = engine.metadata.quantization["check"]
        assert check["images"] == 16 and check["mask_dice_agreement"] > 0.9
        assert sum(check["class_flips"].values()) <= 1
    build = json.loads(sidecar_path(output).read_text())["build"]
    assert build["precision"] == "int8" and build["openvino_version"]


def test_a_changed_or_incomplete_model_and_another_release_are_refused(fp32_model: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "copy.xml"
    for source, target in ((fp32_model, copy), (weights_path(fp32_model), weights_path(copy)),
                           (sidecar_path(fp32_model), sidecar_path(copy))):
        shutil.copy(source, target)
    with open_engine(copy):
        pass
    weights = bytearray(weights_path(copy).read_bytes())
    weights[100] ^= 0xFF
    weights_path(copy).write_bytes(bytes(weights))
    with pytest.raises(CosaEdgeError, match="has been changed since it was built"):
        open_engine(copy)
    weights_path(copy).unlink()
    with pytest.raises(CosaEdgeError, match="no weights file copy.bin"):
        open_engine(copy)
    shutil.copy(weights_path(fp32_model), weights_path(copy))
    sidecar = json.loads(sidecar_path(copy).read_text())
    sidecar["build"]["openvino_version"] = "2023.0.0-1-abc"
    sidecar_path(copy).write_text(json.dumps(sidecar))
    with pytest.raises(CosaEdgeError, match="built with OpenVINO 2023.0 but this machine has"):
        open_engine(copy)
    sidecar_path(copy).unlink()
    with pytest.raises(CosaEdgeError, match="has no sidecar"):
        open_engine(copy)


def test_openvino_build_refusals(exported_onnx: Path, tmp_path: Path) -> None:
    with pytest.raises(CosaEdgeError, match="an OpenVINO model is an .xml file"):
        build_engine(exported_onnx, tmp_path / "model.bin", target="openvino", precision="fp32")
    with pytest.raises(CosaEdgeError, match="fp32 or int8"):
        build_engine(exported_onnx, tmp_path / "model.xml", target="openvino", precision="fp16")
    assert list(tmp_path.iterdir()) == []
