"""Calipers found, removed and drawn (cosa_edge/data/marks.py), for issue #23's shortcut control.

Real: OpenCV's morphology, template matching and inpainting on phantoms and, where present, BUSI's own images
(known caliper images and normal ones, which carry none). scripts/shortcut_control.py is run on the conftest's
trained model over a stood-in cv run (its folds.json over phantoms, that checkpoint as the fold's last.pt).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from cosa_edge.data.marks import (CALIPER_THRESHOLD, caliper_score, draw_calipers, has_calipers, mark_mask,
                                  remove_marks)
from cosa_edge.data.phantom import make_phantom_dataset

REPO = Path(__file__).resolve().parents[1]


def _phantom() -> np.ndarray:
    """A lesion-free phantom at BUSI's size."""
    return next(s.image for s in make_phantom_dataset(10, seed=4, size=(400, 400), normal_fraction=0.5)
                if not s.has_lesion)


def test_drawn_calipers_are_found_and_removing_the_marks_takes_them_away() -> None:
    clean = _phantom()
    assert not has_calipers(clean)
    drawn = draw_calipers(clean, np.random.default_rng(0))
    assert caliper_score(drawn) >= CALIPER_THRESHOLD > caliper_score(clean)
    changed = drawn != clean
    assert 0 < changed.mean() < 0.01  # a few hundred pixels: crosses, dots, two digits
    assert mark_mask(drawn)[changed].mean() > 0.9  # the remover sees what was drawn
    restored = remove_marks(drawn)
    assert not has_calipers(restored)
    far = ~cv2.dilate(mark_mask(drawn).astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
    assert np.array_equal(restored[far], drawn[far])  # nothing changes away from the marks


def test_the_same_seed_draws_the_same_calipers() -> None:
    image = _phantom()
    first = draw_calipers(image, np.random.default_rng(7))
    assert np.array_equal(first, draw_calipers(image, np.random.default_rng(7)))
    assert not np.array_equal(first, draw_calipers(image, np.random.default_rng(8)))


def test_an_image_without_saturated_marks_is_left_as_it_is() -> None:
    image = np.clip(_phantom(), 0, 200).astype(np.uint8)  # nothing reaches the marks' grey level
    assert not mark_mask(image).any() and np.array_equal(remove_marks(image), image)
    assert caliper_score(np.zeros((5, 5), np.uint8)) == 0.0  # smaller than a cross: no score, no error


def test_busi_calipers_are_found_on_lesion_images_and_not_on_normal_ones(busi_path: Path) -> None:
    def read(name: str) -> np.ndarray:
        return cv2.imread(str(busi_path / name), cv2.IMREAD_GRAYSCALE)

    # Two images whose calipers were looked at (docs/busi-cv.md, "Shortcut control").
    for name in ("benign/benign (220).png", "malignant/malignant (111).png"):
        image = read(name)
        assert has_calipers(image), name
        assert not has_calipers(remove_marks(image)), name
    for k in range(1, 134, 12):
        assert not has_calipers(read(f"normal/normal ({k}).png")), k


def test_the_shortcut_control_tabulates_every_subset(trained_checkpoint: Path, tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from cosa_edge.data import load_dataset

    names = [s.name for s in load_dataset("phantom:20", phantom_size=64, include_normal=True)]
    run = tmp_path / "cv"
    (run / "mtl_cosa" / "fold0").mkdir(parents=True)
    (run / "folds.json").write_text(json.dumps({"folds": [{"index": 0, "test": names[:10]},
                                                          {"index": 1, "test": names[10:]}]}))
    shutil.copy(trained_checkpoint, run / "mtl_cosa" / "fold0" / "last.pt")
    (run / "mtl_cosa" / "fold0" / "metrics.json").write_text("{}")  # fold 1 is not finished: skipped
    command = [sys.executable, str(REPO / "scripts" / "shortcut_control.py"), str(run), "--data", "phantom:20",
               "-o", str(tmp_path / "shortcut.md")]
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=600)
    assert done.returncode == 0, done.stderr
    records = json.loads((run / "shortcut" / "fold0.json").read_text())
    assert sorted(r["name"] for r in records) == sorted(names[:10])
    normal = [r for r in records if not r["lesion"]]
    assert normal and all("present_calipers_drawn" in r for r in normal)
    table = (tmp_path / "shortcut.md").read_text()
    assert "Test folds 0, pooled" in table and "normal images, calipers drawn in" in table
    assert f"| normal images, marks removed | {len(normal)} |" in table
    # A rerun reads the fold's records instead of running the model again.
    (run / "mtl_cosa" / "fold0" / "last.pt").unlink()
    again = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=600)
    assert again.returncode == 0 and again.stdout == done.stdout, again.stderr
    (run / "shortcut" / "fold0.json").unlink()  # neither records nor a checkpoint: named
    gone = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=600)
    assert gone.returncode != 0 and "fold 0 has no last.pt" in gone.stderr
