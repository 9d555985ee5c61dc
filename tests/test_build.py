from __future__ import annotations

from pathlib import Path

import onnx
import pytest
from click.testing import CliRunner

from cosa_edge.cli import cli
from cosa_edge.data.phantom import make_phantom_dataset
from cosa_edge.backends import open_engine
from cosa_edge.engines.build import build_engine
from cosa_edge.engines.tensorrt_build import precision_mode
from cosa_edge.evaluation.comparison import check_fp16_fidelity
from cosa_edge.engines.fp16 import convert_to_fp16
from cosa_edge.errors import CosaEdgeError


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_onnxruntime_engine_keeps_metadata_and_agrees(exported_onnx: Path, tmp_path: Path, precision: str) -> None:
    result = build_engine(exported_onnx, tmp_path / "engine.onnx", target="onnxruntime", precision=precision)
    with open_engine(exported_onnx) as fp32, open_engine(result.engine) as engine:
        assert engine.metadata.precision == precision
        assert engine.metadata.weights_sha256 == fp32.metadata.weights_sha256
        agreement = check_fp16_fidelity(fp32, engine, make_phantom_dataset(16, seed=8, size=(64, 64)))
    assert agreement.mask_dice_agreement >= 0.99 and agreement.max_probability_difference <= 0.01


def test_fp16_graph_keeps_softmax_and_region_maps_in_fp32(exported_onnx: Path, tmp_path: Path) -> None:
    convert_to_fp16(exported_onnx, tmp_path / "fp16.onnx")
    model = onnx.load(str(tmp_path / "fp16.onnx"))
    weights = {i.name: i.data_type for i in model.graph.initializer}
    conv_weights = [weights[n.input[1]] for n in model.graph.node if n.op_type == "Conv" and n.input[1] in weights]
    assert onnx.TensorProto.FLOAT16 in conv_weights  # the network itself is FP16 ...
    sobel = [n for n in model.graph.node if n.op_type == "Conv" and n.name.startswith("/model/cosa/")
             and "/attention" not in n.name]
    assert sobel and all(weights.get(n.input[1], onnx.TensorProto.FLOAT) == onnx.TensorProto.FLOAT for n in sobel)
    # ... and every Softmax reads FP32 (a Cast to FLOAT feeds it, or it was never converted).
    value_types = {v.name: v.type.tensor_type.elem_type for v in model.graph.value_info}
    producers = {o: n for n in model.graph.node for o in n.output}
    for node in (n for n in model.graph.node if n.op_type == "Softmax"):
        source = producers.get(node.input[0])
        fp32_input = value_types.get(node.input[0]) == onnx.TensorProto.FLOAT or (
            source is not None and source.op_type == "Cast"
            and onnx.helper.get_attribute_value(source.attribute[0]) == onnx.TensorProto.FLOAT)
        assert fp32_input, node.name


def test_tensorrt_precision_mode_is_true_for_every_build() -> None:
    """The sidecar's precision_mode: FP32 builds are not FP16 of any kind, and each version says how it got FP16."""
    assert precision_mode("fp32", 10) == precision_mode("fp32", 11) == "FP32"
    assert precision_mode("fp16", 10) == "builder flag FP16 (TensorRT 10) with FP32 islands pinned"
    assert precision_mode("fp16", 11) == "strongly typed FP16 ONNX (TensorRT 11)"
    assert precision_mode("fp16", 12) == "strongly typed FP16 ONNX (TensorRT 12)"
    assert precision_mode("fp32", 10, tf32=True) == "FP32; TF32 allowed in FP32 layers"
    # INT8 from the symmetric QDQ ONNX (engines/int8.py): the flag on TensorRT 10, strongly typed from 11.
    assert precision_mode("int8", 10) == "explicit INT8 QDQ ONNX, symmetric, with the INT8 builder flag (TensorRT 10)"
    assert precision_mode("int8", 11) == "strongly typed INT8 QDQ ONNX, symmetric (TensorRT 11)"
    with pytest.raises(CosaEdgeError, match="fp16, fp32 or int8"):
        precision_mode("int4", 10)


def test_build_refuses_bad_inputs(exported_onnx: Path, tmp_path: Path) -> None:
    with pytest.raises(CosaEdgeError, match="does not exist"):
        build_engine(tmp_path / "missing.onnx", tmp_path / "e.onnx", target="onnxruntime")
    (tmp_path / "bad.onnx").write_bytes(b"nonsense")
    with pytest.raises(CosaEdgeError, match="not a readable ONNX model"):
        build_engine(tmp_path / "bad.onnx", tmp_path / "e.onnx", target="onnxruntime")
    with pytest.raises(CosaEdgeError, match="name the output"):
        build_engine(exported_onnx, tmp_path / "e.engine", target="onnxruntime")
    convert_to_fp16(exported_onnx, tmp_path / "half.onnx")
    with pytest.raises(CosaEdgeError, match="already fp16"):
        build_engine(tmp_path / "half.onnx", tmp_path / "e.onnx", target="onnxruntime")


def test_cli_export_and_build_engine(trained_checkpoint: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["export", str(trained_checkpoint), "-o", str(tmp_path / "m.onnx")])
    assert result.exit_code == 0, result.output
    assert "parity with PyTorch on 8 images" in result.output
    result = runner.invoke(cli, ["build-engine", str(tmp_path / "m.onnx"), "-o", str(tmp_path / "m.ort.onnx"),
                                 "--target", "onnxruntime", "--precision", "fp16", "--batch", "1:4:8"])
    assert result.exit_code == 0, result.output
    assert "fp16 engine against the FP32 model on 8 images" in result.output


def test_asking_for_tensorrt_without_it_says_what_to_install(exported_onnx: Path, tmp_path: Path) -> None:
    import importlib.util

    if importlib.util.find_spec("tensorrt") and importlib.util.find_spec("pycuda"):
        pytest.skip("TensorRT is installed here")
    result = CliRunner().invoke(cli, ["build-engine", str(exported_onnx), "-o", str(tmp_path / "m.engine"),
                                      "--target", "tensorrt"])
    assert result.exit_code == 1
    assert "pip install 'cosa-edge[tensorrt]'" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "m.engine").exists()


def test_an_engine_that_fails_its_check_leaves_the_previous_engine_as_it_was(exported_onnx: Path, tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Stand-in: the FP16 check is replaced by one that always fails (a real FP16 engine of this model passes it);
    what is real is the build, the CLI's handling of the failure and the files left behind."""
    import cosa_edge.engines.build as build

    output = tmp_path / "model.fp16.onnx"
    good = CliRunner().invoke(cli, ["build-engine", str(exported_onnx), "-o", str(output), "--target", "onnxruntime",
                                    "--precision", "fp16"])
    assert good.exit_code == 0, good.output
    before = output.read_bytes()
    again = CliRunner().invoke(cli, ["build-engine", str(exported_onnx), "-o", str(output), "--target", "onnxruntime",
                                     "--precision", "fp16"])
    assert again.exit_code != 0 and "already exists; give --overwrite" in again.output

    def failing_check(*_args: object) -> None:
        raise CosaEdgeError("the FP16 engine strays from FP32 beyond tolerance")

    monkeypatch.setattr(build, "check_fp16_fidelity", failing_check)
    result = CliRunner().invoke(cli, ["build-engine", str(exported_onnx), "-o", str(output), "--target", "onnxruntime",
                                      "--precision", "fp16", "--overwrite"])
    assert result.exit_code != 0 and "strays" in result.output and "nothing was written" in result.output
    assert f"{output} is as it was" in result.output
    assert output.read_bytes() == before  # the rebuild was checked beside it and never moved into place
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.fp16.onnx"]  # no staging folder left behind
    output.unlink()
    # A mistyped --check-data is refused before anything is built.
    typo = CliRunner().invoke(cli, ["build-engine", str(exported_onnx), "-o", str(output), "--target", "onnxruntime",
                                    "--check-data", "phantm:8"])
    assert typo.exit_code != 0 and "unknown data spec" in typo.output and not output.exists()
