"""scripts/compare_cv_runs.py: two cv runs on the same folds compared image by image (issue #23's paired tests)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "compare_cv_runs.py"


def fake_run(folder: Path, skill: float, folds: dict, seed: int) -> Path:
    """A cv output folder with folds.json and each fold's predictions: better models get larger ``skill``."""
    rng = np.random.default_rng(seed)
    (folder).mkdir()
    (folder / "folds.json").write_text(json.dumps(folds))
    for k in range(len(folds["folds"])):
        fold_dir = folder / "mtl_cosa" / f"fold{k}"
        fold_dir.mkdir(parents=True)
        records = []
        for i in range(40):
            label = i % 2
            malignant = float(np.clip(0.5 + skill * (label - 0.5) + rng.normal(0, 0.2), 0.01, 0.99))
            records.append({"name": f"f{k}_{i}", "label": label, "probabilities": [1 - malignant, malignant],
                            "dice": float(np.clip(0.5 + skill / 2 + rng.normal(0, 0.05), 0, 1))})
        (fold_dir / "predictions.json").write_text(json.dumps(records))
    return folder


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, cwd=REPO,
                          timeout=120, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})


def test_a_clearly_better_run_is_called_better_on_every_metric(tmp_path: Path) -> None:
    folds = {"data": "busi", "folds": [[0], [1]]}
    good = fake_run(tmp_path / "good", 0.8, folds, seed=1)
    poor = fake_run(tmp_path / "poor", 0.1, folds, seed=2)
    result = run(str(good), str(poor), "-o", str(tmp_path / "paired.md"))
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith("| poor/mtl_cosa |")]
    assert [row.split(" | ")[1] for row in rows] == ["DSC (per image)", "ACC", "AUC"]
    assert all(row.rstrip(" |").endswith("yes") for row in rows), rows  # each difference called real
    assert all(" | 80 | " in row for row in rows)  # both folds' 40 images, paired by name
    assert (tmp_path / "paired.md").read_text() in result.stdout + "\n"


def test_runs_on_different_folds_or_unfinished_are_refused(tmp_path: Path) -> None:
    a = fake_run(tmp_path / "a", 0.5, {"data": "busi", "folds": [[0], [1]]}, seed=1)
    b = fake_run(tmp_path / "b", 0.5, {"data": "busi", "folds": [[1], [0]]}, seed=2)
    result = run(str(a), str(b))
    assert result.returncode != 0 and "folds differ" in result.stderr
    # The same test images with the data folder spelt another way: the same folds.
    spelt = fake_run(tmp_path / "spelt", 0.5, {"data": "busi:/elsewhere/busi", "folds": [[0], [1]]}, seed=4)
    assert run(str(a), str(spelt)).returncode == 0
    c = fake_run(tmp_path / "c", 0.5, {"data": "busi", "folds": [[0], [1]]}, seed=3)
    (c / "mtl_cosa" / "fold1" / "predictions.json").unlink()
    result = run(str(a), str(c))
    assert result.returncode != 0 and "no predictions for folds [1]" in result.stderr
