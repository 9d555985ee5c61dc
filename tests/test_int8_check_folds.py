"""scripts/int8_check_folds.py: every fold's INT8 engine built and checked as a user's build-engine run would be,
and tabulated pass or fail (issue #23's INT8 condition for recommending a preset).

Real: the export, the INT8 quantization with ONNX Runtime and its accuracy check, on the conftest's small trained
model. Stood in: the cv run is a folder with a folds.json over phantom images and that one checkpoint as each
fold's last.pt (a real cv run trains for hours).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "int8_check_folds.py"


def test_every_fold_is_built_checked_and_tabulated(trained_checkpoint: Path, tmp_path: Path) -> None:
    from cosa_edge.data import load_dataset

    names = [s.name for s in load_dataset("phantom:24", phantom_size=64, seed=0)]
    run = tmp_path / "cv"
    (run).mkdir()
    (run / "folds.json").write_text(json.dumps({"folds": [{"index": 0, "test": names[:12]},
                                                          {"index": 1, "test": names[12:]}]}))
    for k in range(2):
        (run / "mtl_cosa" / f"fold{k}").mkdir(parents=True)
        shutil.copy(trained_checkpoint, run / "mtl_cosa" / f"fold{k}" / "last.pt")
    done = subprocess.run([sys.executable, str(SCRIPT), str(run), "--data", "phantom:24", "--work",
                           str(tmp_path / "engines"), "-o", str(tmp_path / "int8.md")],
                          capture_output=True, text=True, cwd=REPO, timeout=600)
    assert done.returncode == 0, done.stderr
    table = (tmp_path / "int8.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| minmax |")]
    assert [row.split("|")[2].strip() for row in rows] == ["0", "1"]
    assert all(row.rstrip(" |").endswith(("passed", "failed")) for row in rows)
    assert all(row.split("|")[3].strip() == "12" for row in rows)  # each fold checked on its own 12 test images
    assert (tmp_path / "engines" / "mtl_cosa-fold1.minmax.int8.onnx").is_file()


def test_a_run_without_checkpoints_is_named(tmp_path: Path) -> None:
    (tmp_path / "cv").mkdir()
    (tmp_path / "cv" / "folds.json").write_text(json.dumps({"folds": [{"index": 0, "test": []}]}))
    done = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "cv")], capture_output=True, text=True,
                          cwd=REPO, timeout=120)
    assert done.returncode != 0 and "no last.pt for folds [0]" in done.stderr


def test_the_method_is_chosen_on_validation_and_checked_on_test(trained_checkpoint: Path, tmp_path: Path) -> None:
    """scripts/int8_method_on_validation.py: each method calibrated on the training images less the validation
    split, checked there, the choice reported with its test check. Real quantization and checks; the cv run is
    the stand-in above, its fold's config.json the trained model's with a validation split."""
    from cosa_edge.data import load_dataset

    names = [s.name for s in load_dataset("phantom:24", phantom_size=64, seed=0)]
    run = tmp_path / "cv"
    fold_dir = run / "mtl_cosa" / "fold0"
    fold_dir.mkdir(parents=True)
    (run / "folds.json").write_text(json.dumps({"folds": [{"index": 0, "test": names[:8]}]}))
    shutil.copy(trained_checkpoint, fold_dir / "last.pt")
    config = json.loads((trained_checkpoint.parent / "config.json").read_text())
    config["config"]["val_fraction"] = 0.3
    (fold_dir / "config.json").write_text(json.dumps(config))
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "int8_method_on_validation.py"), str(run),
                           "--data", "phantom:24", "--methods", "minmax,percentile", "--work",
                           str(tmp_path / "engines"), "-o", str(tmp_path / "chosen.md")],
                          capture_output=True, text=True, cwd=REPO, timeout=600)
    assert done.returncode == 0, done.stderr
    row = next(line for line in (tmp_path / "chosen.md").read_text().splitlines() if line.startswith("| 0 |"))
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[1].split(" ")[1] == "(5)" and cells[2].split(" ")[1] == "(5)"  # 16 training images: 5 validate
    assert cells[3] in ("minmax", "percentile") and cells[5] in ("passed", "failed")
    assert (tmp_path / "engines" / "mtl_cosa-fold0.percentile.int8.onnx").is_file()
