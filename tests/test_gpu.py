"""CUDA paths: mixed-precision training and NCCL. Skipped where no GPU is present (marker `gpu`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from cosa_edge.data.phantom import make_phantom_dataset  # noqa: E402
from cosa_edge.train.checkpoint import load_checkpoint  # noqa: E402
from cosa_edge.train.distributed import LaunchOptions, run_torchrun  # noqa: E402
from cosa_edge.train.loop import train  # noqa: E402
from tests.test_train import tiny_config  # noqa: E402

pytestmark = pytest.mark.gpu


def test_cuda_training_with_amp(tmp_path: Path) -> None:
    samples = make_phantom_dataset(16, seed=0, size=(64, 64))
    config = tiny_config(epochs=2, device="cuda", amp=True, val_fraction=0.25)
    train(config, samples, tmp_path / "run", progress=False)
    checkpoint = load_checkpoint(tmp_path / "run" / "last.pt")
    assert checkpoint.scaler, "GradScaler state is empty: AMP was not used"
    records = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in records)
    assert all(t.device.type == "cpu" for t in checkpoint.weights.values())  # portable checkpoints


def test_one_gpu_nccl_run_through_torchrun(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    config = tiny_config(epochs=1, device="cuda")
    (run / "launch.json").write_text(json.dumps({"config": config.to_dict(), "data": "phantom:16", "resume": False}))
    run_torchrun(LaunchOptions(nproc_per_node=1), run / "launch.json")
    ranks = json.loads((run / "ranks.json").read_text())
    assert ranks["world_size"] == 1
    assert load_checkpoint(run / "last.pt").epoch == 1
