"""Same command, seed, software and machine: the same weights, bit for bit; and no library call leaves torch's
process-wide settings changed behind its caller.

Real: training on phantoms in fresh Python processes, through the CLI as a user runs it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from cosa_edge.hardware import available_cpus  # noqa: E402

TRAIN = ["train", "--data", "phantom:16", "--image-size", "64", "--epochs", "2", "--batch-size", "4",
         "--val-fraction", "0.25", "--device", "cpu", "--seed", "3"]
# An earlier call in the same process changed torch's thread count, as an engine opened with --threads once did;
# training must not inherit it.
ENTRY = ("import sys, torch\nif sys.argv[1] != '-': torch.set_num_threads(int(sys.argv[1]))\n"
         "sys.argv = ['cosa-edge'] + sys.argv[2:]\nfrom cosa_edge.cli import main\nmain()")


def _train(run_dir: Path, earlier_threads: str = "-", *extra: str) -> tuple[str, dict]:
    done = subprocess.run([sys.executable, "-c", ENTRY, earlier_threads, *TRAIN, *extra, "--out", str(run_dir)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    payload = torch.load(run_dir / "last.pt", map_location="cpu", weights_only=False)
    return payload["weights_sha256"], json.loads((run_dir / "config.json").read_text())["runtime"]


def test_training_twice_in_fresh_processes_gives_the_same_weights(tmp_path: Path) -> None:
    first, runtime = _train(tmp_path / "a")
    second, _ = _train(tmp_path / "b", "1")  # torch was set to 1 thread before training began
    assert first == second
    if available_cpus() > 1:  # why the count must come from the config: another count, other float sums
        other, recorded = _train(tmp_path / "c", "-", "--threads", "1")
        assert other != first and recorded["threads"] == 1
    assert runtime["threads"] == available_cpus() and runtime["deterministic_algorithms"] is True
    assert runtime["OMP_DYNAMIC"] == runtime["MKL_DYNAMIC"] == "FALSE"  # the CLI switched dynamic threading off


def test_training_and_engines_put_the_callers_thread_count_back(trained_checkpoint: Path, tmp_path: Path) -> None:
    from cosa_edge.backends import open_engine
    from cosa_edge.config import load_preset
    from cosa_edge.data.phantom import make_phantom_dataset
    from cosa_edge.train.loop import train

    before = torch.get_num_threads()
    caller = 1 if before != 1 else 2
    torch.set_num_threads(caller)
    try:
        with open_engine(trained_checkpoint, backend="torch", threads=3) as engine:
            assert torch.get_num_threads() == caller
            engine.infer(torch.full((1, 1, 64, 64), 128.0).numpy())
            assert torch.get_num_threads() == caller
        config = load_preset("edge").replace(image_size=64, decoder_channels=(16, 8, 8, 8), epochs=1, batch_size=4,
                                             val_fraction=0.0, device="cpu", threads=2)
        train(config, make_phantom_dataset(8, seed=0, size=(64, 64)), tmp_path / "run", progress=False)
        assert torch.get_num_threads() == caller and not torch.are_deterministic_algorithms_enabled()
        recorded = json.loads((tmp_path / "run" / "config.json").read_text())
        assert recorded["runtime"]["threads"] == 2 and recorded["config"]["threads"] == 2
    finally:
        torch.set_num_threads(before)
