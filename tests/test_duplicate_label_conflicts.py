"""scripts/duplicate_label_conflicts.py finds near-duplicate images whose labels disagree (issue #23)."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

from cosa_edge import MALIGNANT
from cosa_edge.data.folder import write_folder
from cosa_edge.data.phantom import make_phantom_dataset

REPO = Path(__file__).resolve().parents[1]


def test_a_copy_with_another_label_is_listed_and_a_true_copy_is_not(tmp_path: Path) -> None:
    samples = [s for s in make_phantom_dataset(12, seed=5, size=(96, 96)) if s.has_lesion]
    benign = next(s for s in samples if s.label != MALIGNANT)
    relabelled = dataclasses.replace(benign, name="copy_relabelled", label=MALIGNANT)
    other = next(s for s in samples if s is not benign)
    same_label = dataclasses.replace(other, name="copy_same_label")
    write_folder([*samples, relabelled, same_label], tmp_path / "data")
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "duplicate_label_conflicts.py"),
                             f"folder:{tmp_path / 'data'}"], capture_output=True, text=True, cwd=REPO, timeout=120,
                            env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith("| 1 |")]
    assert len(rows) == 1 and "copy_relabelled (malignant)" in rows[0] and "(benign)" in rows[0]
    assert "copy_same_label" not in result.stdout and "1 with conflicting labels" in result.stdout
