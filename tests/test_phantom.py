from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from cosa_edge import BENIGN, MALIGNANT
from cosa_edge.data.phantom import make_phantom, make_phantom_dataset, phantom_sweep, write_sweep_video


def _extent(mask: np.ndarray) -> tuple[int, int]:
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return cols[-1] - cols[0] + 1, rows[-1] - rows[0] + 1


def test_same_seed_same_phantom_and_different_seed_different() -> None:
    a, b, c = make_phantom(7), make_phantom(7), make_phantom(8)
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.mask, b.mask)
    assert not np.array_equal(a.image, c.image)


def test_benign_is_wider_than_tall_and_malignant_taller_than_wide() -> None:
    for seed in range(10):
        width, height = _extent(make_phantom(seed, label=BENIGN).mask)
        assert width > height
        # Spicules may stick out sideways, so compare the lesion's core (its second moments).
        mask = make_phantom(seed, label=MALIGNANT).mask.astype(np.uint8)
        moments = cv2.moments(mask, binaryImage=True)
        assert moments["mu02"] > moments["mu20"]


def test_malignant_lesions_have_rougher_margins() -> None:
    def roughness(mask: np.ndarray) -> float:
        contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        contour = max(contours, key=cv2.contourArea)
        return cv2.arcLength(contour, True) ** 2 / (4 * np.pi * cv2.contourArea(contour))  # 1 for a circle

    benign = np.mean([roughness(make_phantom(s, label=BENIGN).mask) for s in range(8)])
    malignant = np.mean([roughness(make_phantom(s, label=MALIGNANT).mask) for s in range(8)])
    assert malignant > benign * 1.3


def test_lesion_is_hypoechoic_and_malignant_casts_a_shadow() -> None:
    shadow_ratio = {}
    for label in (BENIGN, MALIGNANT):
        ratios = []
        for seed in range(6):
            s = make_phantom(seed, label=label)
            assert s.image[s.mask].mean() < s.image[~s.mask].mean()
            cols = np.flatnonzero(s.mask.any(axis=0))
            bottom = np.flatnonzero(s.mask.any(axis=1))[-1]
            below = s.image[bottom + 5:bottom + 40, cols[0]:cols[-1] + 1].mean()
            beside = s.image[bottom + 5:bottom + 40, :max(cols[0] - 10, 1)].mean()
            ratios.append(below / beside)
        shadow_ratio[label] = np.mean(ratios)
    assert shadow_ratio[MALIGNANT] < 0.85 < shadow_ratio[BENIGN]


def test_dataset_has_about_a_third_malignant() -> None:
    samples = make_phantom_dataset(30, seed=0, size=(64, 64))
    assert sum(s.label for s in samples) == 10


def test_sweep_video_is_readable(tmp_path: Path) -> None:
    frames = list(phantom_sweep(seed=3, frames=5, size=(64, 80)))
    assert [f.index for f in frames] == list(range(5))
    assert frames[0].mask.sum() != frames[-1].mask.sum() or not np.array_equal(frames[0].image, frames[-1].image)
    path = write_sweep_video(tmp_path / "sweep.mp4", seed=3, frames=6, size=(64, 80))
    capture = cv2.VideoCapture(str(path))
    count = 0
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        assert frame.shape[:2] == (64, 80)
        count += 1
    assert count == 6
    assert not list(tmp_path.glob(".*partial*"))


def test_lesions_at_the_edge_reach_the_side_of_the_field() -> None:
    """As a sweeping probe shows them: cut by (or touching) the left or right side, at least half in view."""
    sides = set()
    for seed in range(12):
        centred, edge = make_phantom(seed, label=MALIGNANT), make_phantom(seed, label=MALIGNANT, at_edge=True)
        columns = np.flatnonzero(edge.mask.any(axis=0))
        assert columns[0] == 0 or columns[-1] == edge.mask.shape[1] - 1
        sides.add("left" if columns[0] == 0 else "right")
        assert not (centred.mask[:, 0].any() or centred.mask[:, -1].any())
        assert edge.mask.any() and edge.mask.sum() >= 0.4 * centred.mask.sum()
    assert sides == {"left", "right"}
    dataset = make_phantom_dataset(40, normal_fraction=0.2, edge_fraction=0.25)
    for label in (BENIGN, MALIGNANT):
        members = [s for s in dataset if s.label == label]
        at_side = [s for s in members if s.mask[:, 0].any() or s.mask[:, -1].any()]
        assert 0.15 * len(members) <= len(at_side) <= 0.4 * len(members), (label, len(at_side), len(members))
