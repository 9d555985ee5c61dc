"""DistributedDataParallel on CPU with gloo, through the same torchrun launcher as on GPUs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from cosa_edge.train.checkpoint import load_checkpoint  # noqa: E402

COMMON = ["--data", "phantom:24", "--image-size", "64", "--epochs", "2", "--batch-size", "8",
          "--val-fraction", "0", "--device", "cpu", "--workers", "0"]


def _train(out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "cosa_edge.cli", "train", *COMMON, "--out", str(out), *extra]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def test_two_ranks_end_identical_and_match_one_process(tmp_path: Path) -> None:
    # LeNet has no batch norm, so one process on the global batch computes the same gradients
    # as two ranks on half batches averaged by DDP.
    # Without class weights: a weighted cross-entropy is normalised by each rank's own sum of weights, so two
    # half batches averaged differ from one whole batch (as in any DDP run); the rest of the recipe is exact.
    _train(tmp_path / "ddp", "--model", "lenet", "--nproc-per-node", "2", "--no-balance-classes")
    _train(tmp_path / "single", "--model", "lenet", "--no-balance-classes")
    ranks = json.loads((tmp_path / "ddp" / "ranks.json").read_text())
    assert ranks["world_size"] == 2
    assert len(set(ranks["rank_parameter_sha256"])) == 1
    ddp = load_checkpoint(tmp_path / "ddp" / "last.pt").weights
    single = load_checkpoint(tmp_path / "single" / "last.pt").weights
    for name in single:
        torch.testing.assert_close(ddp[name], single[name], rtol=1e-4, atol=1e-5)
    assert (tmp_path / "ddp" / "log.jsonl").read_text().count("\n") == 2  # rank 0 alone logs


def test_mtl_cosa_ranks_stay_in_sync(tmp_path: Path) -> None:
    _train(tmp_path / "ddp", "--nproc-per-node", "2", "--epochs", "1")
    ranks = json.loads((tmp_path / "ddp" / "ranks.json").read_text())
    assert len(ranks["rank_parameter_sha256"]) == 2 and len(set(ranks["rank_parameter_sha256"])) == 1
