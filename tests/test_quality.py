"""The quality gate: blank, frozen, colour and out-of-distribution frames get no verdict; ultrasound passes."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from cosa_edge.data.imageio import read_frame, to_grey_uint8
from cosa_edge.data.phantom import make_phantom, make_phantom_dataset
from cosa_edge.stream.postprocess import frame_roi
from cosa_edge.stream.quality import BLANK, COLOUR, FROZEN, QualityGate, colour_sample, colour_share


def _bgr(grey: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)


def _jpeg(image: np.ndarray, quality: int = 60) -> np.ndarray:
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.imdecode(data, cv2.IMREAD_COLOR)


def _doppler(grey: np.ndarray) -> np.ndarray:
    """A colour-flow box: red and blue blobs over about 5% of the image, as scanners draw them."""
    frame = _bgr(grey)
    h, w = grey.shape
    cv2.ellipse(frame, (w // 2, h // 2), (w // 12, h // 20), 0, 0, 360, (0, 0, 220), -1)
    cv2.ellipse(frame, (w // 2 + w // 8, h // 2), (w // 14, h // 24), 0, 0, 360, (230, 80, 0), -1)
    return frame


def test_ultrasound_passes_in_grey_in_colour_video_and_after_compression() -> None:
    gate, image = QualityGate(), make_phantom(1).image
    for frame in (image, _bgr(image), _jpeg(_bgr(image), 40)):
        assert gate.check(frame, frame_roi(frame.shape, None)) is None


def test_blank_frames() -> None:
    gate = QualityGate()
    for value in (0, 128, 255):
        assert gate.check(np.full((64, 80), value, np.uint8), (0, 0, 80, 64)) == BLANK
    rng = np.random.default_rng(0)
    faint = np.clip(128 + rng.normal(0, 1.0, (64, 80)), 0, 255).astype(np.uint8)  # noise of a probe in air
    assert gate.check(faint, (0, 0, 80, 64)) == BLANK


def test_frozen_only_on_a_live_source() -> None:
    image = make_phantom(2, size=(64, 64)).image
    live, file = QualityGate(live=True), QualityGate(live=False)
    for gate in (live, file):
        assert gate.check(image, (0, 0, 64, 64)) is None
    assert live.check(image.copy(), (0, 0, 64, 64)) == FROZEN
    assert file.check(image.copy(), (0, 0, 64, 64)) is None  # a file may hold duplicate frames
    assert live.check(make_phantom(3, size=(64, 64)).image, (0, 0, 64, 64)) is None


def test_colour_inside_the_region_of_interest() -> None:
    gate, image = QualityGate(), make_phantom(4).image
    assert gate.check(_doppler(image), (0, 0, 256, 256)) == COLOUR
    assert gate.check(_jpeg(_doppler(image)), (0, 0, 256, 256)) == COLOUR
    # Colour outside the region (a scanner's coloured UI beside the image) does not count.
    frame = _bgr(image)
    frame[:, 200:] = (0, 200, 255)
    assert gate.check(frame, (0, 0, 200, 256)) is None


def test_the_colour_check_of_a_scanner_sized_frame_samples_it_and_finds_the_same_share() -> None:
    image = make_phantom(5, size=(480, 640)).image
    doppler = _jpeg(_doppler(image))
    assert colour_sample(doppler).shape[:2] == (120, 160)  # every 4th pixel
    assert colour_share(colour_sample(doppler), 80) == pytest.approx(colour_share(doppler, 80), rel=0.1)
    gate = QualityGate()
    for side, expected in ((56, COLOUR), (24, None)):  # a colour box of 1.0% and of 0.19% of the frame
        frame = _bgr(image)
        frame[200:200 + side, 300:300 + side] = (40, 60, 220)
        assert gate.check(_jpeg(frame, 80), (0, 0, 640, 480)) == expected


def test_busi_images_pass_the_gate(busi_path: Path) -> None:
    """Most BUSI images pass; its colour-Doppler images (colour flow over the B-mode image) do not."""
    rejected, total = [], 0
    for path in sorted(busi_path.glob("*/*.png")):
        if "_mask" in path.stem:
            continue
        total += 1
        frame = read_frame(path)
        reason = QualityGate().check(frame, frame_roi(frame.shape, None))
        if reason is not None:
            rejected.append((path.name, reason))
    assert total == 780
    assert len(rejected) <= 0.05 * total, rejected
    assert {reason for _, reason in rejected} <= {COLOUR}


# ---- the out-of-distribution score, end to end: trained, exported, applied by the pipeline ----

@pytest.fixture(scope="module")
def ood_engine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    from cosa_edge.export.onnx_export import export_onnx
    from cosa_edge.train.loop import train
    from tests.test_train import tiny_config

    folder = tmp_path_factory.mktemp("ood")
    samples = make_phantom_dataset(80, seed=2, size=(64, 64), normal_fraction=0.2)
    train(tiny_config(epochs=4, val_fraction=0.25, lr=1e-3, save_every=100), samples, folder / "run", progress=False)
    export_onnx(folder / "run" / "best.pt", folder / "model.onnx")
    return folder / "model.onnx"


def _photographs() -> list[np.ndarray]:
    data = pytest.importorskip("skimage.data")
    return [getattr(data, name)() for name in ("camera", "coins", "moon", "page", "text", "brick", "grass", "gravel",
                                               "astronaut", "coffee", "chelsea", "rocket")]


def test_the_engine_scores_and_says_how_its_threshold_was_chosen(ood_engine: Path) -> None:
    from cosa_edge.engines.onnxruntime_engine import OnnxRuntimeEngine

    with OnnxRuntimeEngine(ood_engine) as engine:
        assert [o.name for o in engine.outputs][-1] == "ood_score"
        assert engine.metadata.ood["chosen_on"] == "validation: 20 held-out images and 2 other acquisitions of each"
        assert engine.metadata.ood["threshold"] > 0 and "mean" not in engine.metadata.ood


def test_too_few_validation_images_give_no_score_and_say_why(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from cosa_edge.train.checkpoint import load_checkpoint
    from cosa_edge.train.loop import train
    from tests.test_train import tiny_config

    samples = make_phantom_dataset(24, seed=3, size=(64, 64))
    train(tiny_config(epochs=1, val_fraction=0.25, save_every=100), samples, tmp_path / "run", progress=False)
    assert load_checkpoint(tmp_path / "run" / "best.pt").ood == {
        "chosen_on": "none: 6 validation images, fewer than the 20 a threshold needs"}


def test_photographs_are_rejected_and_held_out_ultrasound_is_not(ood_engine: Path, tmp_path: Path) -> None:
    from cosa_edge.engines.onnxruntime_engine import OnnxRuntimeEngine
    from cosa_edge.stream.run import infer_source

    folder = tmp_path / "frames"
    folder.mkdir()
    held_out = make_phantom_dataset(40, seed=77, size=(64, 64), normal_fraction=0.2)
    for i, sample in enumerate(held_out):
        cv2.imwrite(str(folder / f"a{i:03d}.png"), sample.image)
    for i, photo in enumerate(_photographs()):
        picture = cv2.cvtColor(photo, cv2.COLOR_RGB2BGR) if photo.ndim == 3 else to_grey_uint8(photo)
        cv2.imwrite(str(folder / f"b{i:03d}.png"), picture)
    with OnnxRuntimeEngine(ood_engine) as engine:
        infer_source(str(folder), engine, None, tmp_path / "out.jsonl", batch_size=4, progress=False)
    records = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()[1:]]
    ultrasound, photos = records[:len(held_out)], records[len(held_out):]
    assert [r["index"] for r in records] == list(range(len(records)))  # rejected frames keep their place
    assert sum(r["status"] != "rejected" for r in ultrasound) >= 0.95 * len(ultrasound)
    assert all(r["status"] == "rejected" for r in photos), [(r["index"], r["status"]) for r in photos]
    assert {r["reason"] for r in photos} <= {"out_of_distribution", "colour"}
    # Nothing about a lesion: the region analysed and its calibration only.
    assert all(set(r) == {"index", "timestamp", "status", "roi", "pixel_spacing_mm", "reason", "latency_ms",
                          "engine_sha256"} for r in photos)
