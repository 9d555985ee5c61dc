from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("torch")

from cosa_edge.backends import open_engine  # noqa: E402
from cosa_edge.contract import ModelMetadata  # noqa: E402
from cosa_edge.data import load_dataset  # noqa: E402
from cosa_edge.data.phantom import make_phantom_dataset  # noqa: E402
from cosa_edge.evaluation.comparison import compare_engines  # noqa: E402
from cosa_edge.evaluation.engine_outputs import frames_of  # noqa: E402
from cosa_edge.errors import CosaEdgeError  # noqa: E402
from cosa_edge.export.onnx_export import export_onnx  # noqa: E402
from cosa_edge.export.parity import MASK_AGREEMENT, PROBABILITY_TOLERANCE, check_export_parity  # noqa: E402


def test_export_is_valid_onnx_with_the_contract_and_metadata(exported_onnx: Path, trained_checkpoint: Path) -> None:
    model = onnx.load(str(exported_onnx))
    onnx.checker.check_model(model, full_check=True)
    assert model.opset_import[0].version >= 17
    assert [i.name for i in model.graph.input] == ["image"]
    assert [o.name for o in model.graph.output] == ["lesion_probability", "class_probabilities"]
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param  # dynamic batch axis
    meta = ModelMetadata.from_props({p.key: p.value for p in model.metadata_props}, "model")
    from cosa_edge.train.checkpoint import load_checkpoint

    assert (meta.architecture, meta.encoder, meta.input_size) == ("mtl_cosa", "resnet18", 64)
    assert meta.class_names == ("benign", "malignant") and meta.normalisation == {"mean": 0.449, "std": 0.226}
    assert meta.weights_sha256 == load_checkpoint(trained_checkpoint).weights_sha256
    assert meta.training_data == {} or "train_counts" in meta.training_data


def test_decoder_resizes_have_constant_scales(exported_onnx: Path) -> None:
    # A Resize fed by Shape ops keeps ONNX Runtime from running the decoder in its blocked layout
    # (see model/decoder.py); every decoder resize must carry a constant scale of 2 instead.
    model = onnx.load(str(exported_onnx))
    constants = {n.output[0]: onnx.numpy_helper.to_array(n.attribute[0].t) for n in model.graph.node
                 if n.op_type == "Constant"}
    constants |= {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    resizes = [n for n in model.graph.node if n.op_type == "Resize" and "/decoder/" in n.name]
    assert len(resizes) == 5
    for node in resizes:
        assert len(node.input) == 3 and node.input[2] in constants, node.input
        assert constants[node.input[2]].tolist() == [1.0, 1.0, 2.0, 2.0]


def test_parity_with_pytorch_on_phantoms(exported_onnx: Path, trained_checkpoint: Path) -> None:
    samples = make_phantom_dataset(12, seed=21, size=(200, 240))  # not the model's size: the frames are resized
    agreement = check_export_parity(exported_onnx, trained_checkpoint, samples)
    assert agreement.max_probability_difference <= PROBABILITY_TOLERANCE
    assert agreement.mask_agreement >= MASK_AGREEMENT and agreement.same_class == 1.0


def test_parity_with_pytorch_on_busi_images(exported_onnx: Path, trained_checkpoint: Path, busi_path: Path) -> None:
    samples = load_dataset(f"busi:{busi_path}", progress=False)[::40]  # 17 real images of both classes
    agreement = check_export_parity(exported_onnx, trained_checkpoint, samples)
    assert agreement.images == len(samples) and agreement.same_class == 1.0


def test_parity_check_catches_a_different_model(exported_onnx: Path, trained_checkpoint: Path, tmp_path: Path) -> None:
    import torch

    from cosa_edge.train.checkpoint import load_checkpoint, load_model, weights_sha256

    payload = load_checkpoint(trained_checkpoint).to_payload()
    payload["model"] = {k: (v + 0.05 * torch.randn_like(v) if v.is_floating_point() else v)
                        for k, v in payload["model"].items()}
    tampered = tmp_path / "tampered.pt"
    torch.save(payload, tampered)
    # Another model, not a changed file: its own weights hash, so that the checkpoint's hash check passes.
    payload["weights_sha256"] = weights_sha256(load_model(tampered)[0])
    torch.save(payload, tampered)
    with pytest.raises(CosaEdgeError, match="disagrees with PyTorch"):
        check_export_parity(exported_onnx, tampered, make_phantom_dataset(4, seed=1, size=(64, 64)))


def test_plugin_export_emits_the_custom_node(trained_checkpoint: Path, tmp_path: Path) -> None:
    export_onnx(trained_checkpoint, tmp_path / "plugin.onnx", cosa_op="plugin")
    model = onnx.load(str(tmp_path / "plugin.onnx"))
    nodes = [n for n in model.graph.node if n.op_type == "CosaRegionMasks"]
    assert len(nodes) == 1
    attributes = {a.name: onnx.helper.get_attribute_value(a) for a in nodes[0].attribute}
    assert attributes == {"grid_h": 2, "grid_w": 2, "plugin_namespace": b"cosa_edge", "aot": 1}


def test_region_maps_inside_the_onnx_graph_match_the_reference(exported_onnx: Path, trained_checkpoint: Path) -> None:
    """The standard export keeps COSA's region maps in standard ops: the ONNX and torch outputs agree
    (checked above), and no custom domain is present."""
    model = onnx.load(str(exported_onnx))
    assert not [n for n in model.graph.node if n.domain not in ("", "ai.onnx")]
    assert {"Pad", "MaxPool", "AveragePool", "Greater"} <= {n.op_type for n in model.graph.node}


def test_bad_onnx_files_give_clear_errors(tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"\x08\x07garbage")
    with pytest.raises(CosaEdgeError, match="ONNX Runtime cannot load"):
        open_engine(corrupt)
    foreign = tmp_path / "foreign.onnx"
    graph = onnx.helper.make_graph([onnx.helper.make_node("Identity", ["x"], ["y"])], "g",
                                   [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
                                   [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])])
    onnx.save(onnx.helper.make_model(graph), foreign)
    with pytest.raises(CosaEdgeError, match="not a cosa-edge model"):
        open_engine(foreign)


def test_wrong_input_size_is_refused(exported_onnx: Path) -> None:
    with open_engine(exported_onnx) as engine:
        with pytest.raises(CosaEdgeError, match=r"\(N, 1, 64, 64\)"):
            engine.infer(np.zeros((1, 1, 128, 128), np.float32))
        out = engine.infer(np.zeros((3, 64, 64), np.float32))  # (N, S, S) is accepted as one channel
        assert out["class_probabilities"].shape == (3, 2)
        np.testing.assert_allclose(out["class_probabilities"].sum(axis=1), 1.0, rtol=1e-5)


def test_compare_engines_measures_masks(exported_onnx: Path, trained_checkpoint: Path) -> None:
    frames = frames_of(make_phantom_dataset(6, seed=5, size=(64, 64)), 64)
    with open_engine(exported_onnx) as a, open_engine(trained_checkpoint) as b:
        predicted = a.infer(frames)["lesion_probability"] > 0.5
        assert predicted.any(), "the fixture model must draw lesions, or mask agreement proves nothing"
        agreement = compare_engines(a, b, frames)
    assert agreement.images == 6 and agreement.mask_dice_agreement > 0.99
