"""Lesion-free images in training and scoring: segmentation loss only, presence chosen on validation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from cosa_edge import NO_LESION  # noqa: E402
from cosa_edge.data.phantom import make_phantom_dataset  # noqa: E402
from cosa_edge.model import CLS_LOGITS, SEG_LOGITS  # noqa: E402
from cosa_edge.train.checkpoint import load_checkpoint  # noqa: E402
from cosa_edge.train.evaluate import Predictions, score  # noqa: E402
from cosa_edge.train.losses import multitask_loss  # noqa: E402
from cosa_edge.train.loop import train  # noqa: E402
from tests.test_train import tiny_config  # noqa: E402


def test_lesion_free_images_count_in_the_segmentation_loss_only() -> None:
    config = tiny_config()
    cls = torch.randn(3, 2, requires_grad=True)
    seg = torch.randn(3, 2, 8, 8, requires_grad=True)
    masks = torch.zeros(3, 8, 8, dtype=torch.long)
    with_normal = torch.tensor([0, 1, NO_LESION])
    loss, parts = multitask_loss({SEG_LOGITS: seg, CLS_LOGITS: cls}, masks, with_normal, config)
    expected = torch.nn.functional.cross_entropy(cls[:2], with_normal[:2])
    assert parts["cls_loss"] == pytest.approx(float(expected.detach()))
    # A batch of lesion-free images only: a finite loss, and the classifier still gets a (zero) gradient.
    loss, parts = multitask_loss({SEG_LOGITS: seg, CLS_LOGITS: cls}, masks, torch.full((3,), NO_LESION), config)
    loss.backward()
    assert np.isfinite(float(loss.detach())) and parts["cls_loss"] == 0.0
    assert cls.grad is not None and float(cls.grad.abs().sum()) == 0.0


def test_scores_classify_lesions_only_and_score_presence() -> None:
    samples = make_phantom_dataset(10, seed=1, size=(32, 32), normal_fraction=0.2)
    labels = np.array([s.label for s in samples])
    probabilities = np.where(labels[:, None] == 1, [0.2, 0.8], [0.8, 0.2])  # right on every lesion
    masks = [s.mask.copy() for s in samples]
    masks[[i for i, s in enumerate(samples) if not s.has_lesion][0]][:2, :2] = True  # one normal gets a speck
    result = score(samples, Predictions([s.name for s in samples], labels, probabilities, masks), 0.01)
    assert result["lesion_free_images"] == 2
    assert result["classification_paper"]["ACC"] == 1.0  # the normals' meaningless class never counts
    assert result["segmentation"]["DSC"] == pytest.approx(1.0)
    assert result["presence"]["sensitivity"] == 1.0 and result["presence"]["specificity"] == 1.0  # 4/1024 < 1%
    strict = score(samples, Predictions([s.name for s in samples], labels, probabilities, masks), 0.003)
    assert strict["presence"]["specificity"] == 0.5


def test_training_with_lesion_free_images_chooses_the_threshold_on_validation(tmp_path: Path) -> None:
    samples = make_phantom_dataset(20, seed=2, size=(64, 64), normal_fraction=0.25)
    config = tiny_config(epochs=2, val_fraction=0.4, save_every=100)
    train(config, samples, tmp_path / "run", progress=False)
    for name in ("last.pt", "best.pt"):
        presence = load_checkpoint(tmp_path / "run" / name).presence
        assert presence["chosen_on"].startswith("validation: ") and presence["min_lesion_share"] > 0
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert log[-1]["val"]["lesion_free_images"] == 2 and "presence" in log[-1]["val"]
    # Without a validation split the default stands, and says so.
    train(tiny_config(epochs=1, save_every=100), samples, tmp_path / "plain", progress=False)
    assert load_checkpoint(tmp_path / "plain" / "last.pt").presence["chosen_on"].startswith("default")


def test_training_fits_a_temperature_on_validation_lesions(tmp_path: Path) -> None:
    samples = make_phantom_dataset(40, seed=4, size=(64, 64), normal_fraction=0.25)
    train(tiny_config(epochs=1, val_fraction=0.4, save_every=100), samples, tmp_path / "run", progress=False)
    calibration = load_checkpoint(tmp_path / "run" / "best.pt").calibration
    # Fitted on the 12 lesion images (the 4 lesion-free ones have no class). A one-epoch model's classes are near
    # chance, so its T may run to the range's end or fail the cross-fit; either way it is not kept, and said so
    # (tests/test_calibration.py has each case).
    assert "validation: 12 lesion images" in calibration["fitted_on"]
    if "rejected_temperature" in calibration:
        assert calibration["temperature"] == 1.0 and calibration["fitted_on"].startswith("none: ")
    else:
        assert calibration["fitted_on"] == "validation: 12 lesion images"
        assert 0.05 < calibration["temperature"] < 20
    assert {"ece_before", "ece_after"} <= set(calibration)
    assert calibration["ece_after"] <= calibration["ece_before"] + 1e-9
    plain = tmp_path / "plain"
    train(tiny_config(epochs=1, save_every=100), samples, plain, progress=False)
    assert load_checkpoint(plain / "last.pt").calibration == {"temperature": 1.0,
                                                               "fitted_on": "none: training had no validation split"}
    few = tmp_path / "few"  # 8 validation images, 6 with a lesion: too few to fit a temperature on
    train(tiny_config(epochs=1, val_fraction=0.4, save_every=100), samples[:20], few, progress=False)
    assert load_checkpoint(few / "last.pt").calibration["fitted_on"].startswith("none: 6 validation lesion images")


def test_the_exported_graph_applies_the_checkpoint_temperature(trained_checkpoint: Path, exported_onnx: Path,
                                                               tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    from cosa_edge.calibration import apply_temperature
    from cosa_edge.evaluation.engine_outputs import frames_of
    from cosa_edge.engines.onnxruntime_engine import OnnxRuntimeEngine
    from cosa_edge.export.onnx_export import export_onnx

    payload = load_checkpoint(trained_checkpoint).to_payload()
    payload["calibration"] = {"temperature": 2.5, "fitted_on": "test: a chosen temperature"}
    calibrated = tmp_path / "calibrated.pt"
    torch.save(payload, calibrated)
    export_onnx(calibrated, tmp_path / "calibrated.onnx")
    frames = frames_of(make_phantom_dataset(6, seed=9, size=(64, 64)), 64)
    with OnnxRuntimeEngine(exported_onnx) as raw, OnnxRuntimeEngine(tmp_path / "calibrated.onnx") as scaled:
        assert scaled.metadata.calibration["temperature"] == 2.5 and raw.metadata.calibration["temperature"] == 1.0
        before, after = raw.infer(frames), scaled.infer(frames)
    np.testing.assert_allclose(after["class_probabilities"], apply_temperature(before["class_probabilities"], 2.5),
                               atol=1e-5)
    np.testing.assert_array_equal(after["lesion_probability"], before["lesion_probability"])  # masks untouched
