"""The COSA plugin node rewritten in standard ONNX ops equals the reference exactly (ONNX Runtime runs it)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from cosa_edge.engines.plugin_fallback import plugin_nodes, replace_plugin_nodes  # noqa: E402
from cosa_edge.errors import CosaEdgeError  # noqa: E402
from cosa_edge.kernels.reference import region_maps  # noqa: E402


def _plugin_only_model(height: int, width: int, grid: tuple[int, int]):  # noqa: ANN202
    helper = onnx.helper
    node = helper.make_node("CosaRegionMasks", ["scores"], ["maps"], domain="cosa_edge", name="cosa",
                            grid_h=grid[0], grid_w=grid[1], plugin_namespace="cosa_edge", aot=1)
    graph = helper.make_graph(
        [node], "plugin_only",
        [helper.make_tensor_value_info("scores", onnx.TensorProto.FLOAT, ["N", 2, height, width])],
        [helper.make_tensor_value_info("maps", onnx.TensorProto.FLOAT, ["N", 3, *grid])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("cosa_edge", 1)])


def _run(model, scores: np.ndarray) -> np.ndarray:  # noqa: ANN001
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"scores": scores})[0]


def _crafted(size: int) -> np.ndarray:
    empty = np.zeros((2, size, size), np.float32)
    empty[0] = 1.0
    full = empty[::-1].copy()
    ties = np.zeros((2, size, size), np.float32)
    border, pixel, two = empty.copy(), empty.copy(), empty.copy()
    border[1, : size // 3, : size // 2] = 2.0
    pixel[1, size // 2, size // 3] = 2.0
    two[1, 2:10, 3:12] = 2.0
    two[1, size - 12:size - 3, size - 9:size - 2] = 2.0
    return np.stack([empty, full, ties, border, pixel, two])


@pytest.mark.parametrize(("height", "width", "grid"), [(64, 64, (8, 8)), (96, 160, (12, 20)), (32, 48, (32, 48)),
                                                       (48, 60, (16, 20)), (128, 192, (2, 3)), (64, 128, (8, 8))])
def test_rewritten_node_equals_the_reference(height: int, width: int, grid: tuple[int, int]) -> None:
    import cv2

    model = _plugin_only_model(height, width, grid)
    assert replace_plugin_nodes(model) == 1 and not plugin_nodes(model)
    assert all(o.domain != "cosa_edge" for o in model.opset_import)
    rng = np.random.default_rng(height * width)
    noise = rng.standard_normal((3, 2, height, width)).astype(np.float32)
    smooth = np.stack([np.stack([cv2.GaussianBlur(c, (0, 0), 3) for c in s]) for s in noise])
    batches = [noise, smooth]
    if height == width:
        batches.append(_crafted(height))
    for scores in batches:
        np.testing.assert_array_equal(_run(model, scores), region_maps(scores, grid))


def test_shapes_the_kernel_refuses_are_refused_here_too() -> None:
    with pytest.raises(CosaEdgeError, match="does not tile"):
        replace_plugin_nodes(_plugin_only_model(100, 100, (8, 8)))
    with pytest.raises(CosaEdgeError, match="64-pixel tile"):
        replace_plugin_nodes(_plugin_only_model(256, 256, (2, 2)))


def test_a_model_without_the_plugin_is_left_alone(exported_onnx: Path) -> None:
    model = onnx.load(str(exported_onnx))
    before = model.SerializeToString()
    assert replace_plugin_nodes(model) == 0 and model.SerializeToString() == before


def test_a_rewritten_plugin_export_matches_the_standard_export(trained_checkpoint: Path, exported_onnx: Path,
                                                               tmp_path: Path) -> None:
    from cosa_edge.data.phantom import make_phantom_dataset
    from cosa_edge.evaluation.engine_outputs import frames_of
    from cosa_edge.export.onnx_export import export_onnx

    export_onnx(trained_checkpoint, tmp_path / "plugin.onnx", cosa_op="plugin")
    model = onnx.load(str(tmp_path / "plugin.onnx"))
    assert replace_plugin_nodes(model) == 1
    frames = frames_of(make_phantom_dataset(6, seed=8, size=(64, 64)), 64)
    standard = ort.InferenceSession(str(exported_onnx), providers=["CPUExecutionProvider"])
    rewritten = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    for a, b in zip(standard.run(None, {"image": frames}), rewritten.run(None, {"image": frames})):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)


def test_build_engine_for_onnxruntime_runs_a_plugin_export(trained_checkpoint: Path, exported_onnx: Path,
                                                           tmp_path: Path) -> None:
    from cosa_edge.backends import open_engine
    from cosa_edge.data.phantom import make_phantom_dataset
    from cosa_edge.engines.build import build_engine
    from cosa_edge.evaluation.comparison import check_fp16_fidelity
    from cosa_edge.export.onnx_export import export_onnx

    export_onnx(trained_checkpoint, tmp_path / "plugin.onnx", cosa_op="plugin")
    result = build_engine(tmp_path / "plugin.onnx", tmp_path / "plugin.ort.onnx", target="onnxruntime",
                          precision="fp32")
    assert len(result.notes) == 1 and "ONNX Runtime has no kernel for the COSA plugin node" in result.notes[0]
    with open_engine(exported_onnx) as standard, open_engine(result.engine) as engine:
        assert engine.metadata.cosa_op == "onnx"
        agreement = check_fp16_fidelity(standard, engine, make_phantom_dataset(6, seed=2, size=(64, 64)))
    assert agreement.same_class == 1.0 and agreement.max_probability_difference < 1e-5


def test_the_onnxruntime_engine_opens_a_plugin_export_directly(trained_checkpoint: Path, exported_onnx: Path,
                                                                tmp_path: Path) -> None:
    from cosa_edge.data.phantom import make_phantom_dataset
    from cosa_edge.evaluation.comparison import compare_engines
    from cosa_edge.evaluation.engine_outputs import frames_of
    from cosa_edge.engines.onnxruntime_engine import OnnxRuntimeEngine
    from cosa_edge.export.onnx_export import export_onnx

    export_onnx(trained_checkpoint, tmp_path / "plugin.onnx", cosa_op="plugin")
    with OnnxRuntimeEngine(exported_onnx) as standard, OnnxRuntimeEngine(tmp_path / "plugin.onnx") as plugin:
        agreement = compare_engines(standard, plugin, frames_of(make_phantom_dataset(4, seed=3, size=(64, 64)), 64))
    assert agreement.max_probability_difference < 1e-5 and agreement.same_class == 1.0


@pytest.mark.parametrize(("version", "has_module", "numpy_version", "expected"), [
    ("10.3.0", False, "1.26.4", "TensorRT 10.3.0 has no tensorrt.plugin"),  # JetPack 6
    ("10.16.1.11", True, "2.4.6", "numpy<2.4"),
    ("11.4.0.106", True, "2.4.6", None),
])
def test_why_tensorrt_cannot_run_the_plugin(monkeypatch: pytest.MonkeyPatch, version: str, has_module: bool,
                                            numpy_version: str, expected: str | None) -> None:
    """Stand-in: the tensorrt module (only its version is read) and the installed numpy's version."""
    import importlib.util
    import types

    from cosa_edge.engines import build, tensorrt_engine

    monkeypatch.setattr(tensorrt_engine, "require", lambda name: types.SimpleNamespace(__version__=version))
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: (object() if has_module else None) if name == "tensorrt.plugin"
                        else real_find_spec(name, *a))
    monkeypatch.setattr(np, "__version__", numpy_version)
    reason = build.plugin_unavailable("tensorrt")
    assert reason is None if expected is None else expected in reason
