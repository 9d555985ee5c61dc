"""The command line as a user meets it, through click's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from cosa_edge.cli import cli

TINY = ["--data", "phantom:12", "--image-size", "64", "--epochs", "1", "--batch-size", "4", "--device", "cpu"]


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("torch")
    run = tmp_path_factory.mktemp("cli") / "run"
    code, output = invoke("train", "--preset", "edge", *TINY, "--val-fraction", "0.25", "--out", str(run))
    assert code == 0, output
    return run


def test_train_writes_checkpoints_and_log(trained_run: Path) -> None:
    assert {"last.pt", "best.pt", "log.jsonl", "config.json"} <= {p.name for p in trained_run.iterdir()}
    assert not [p for p in trained_run.iterdir() if p.name.startswith(".")]  # no temporary files left


def test_evaluate_prints_and_writes_the_papers_metrics(trained_run: Path, tmp_path: Path) -> None:
    code, output = invoke("evaluate", str(trained_run / "best.pt"), "--data", "phantom:12", "--split", "val",
                          "--device", "cpu", "--out", str(tmp_path / "eval"))
    assert code == 0, output
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["images"] == 3  # a quarter of 12 held out, stratified
    assert set(metrics["segmentation"]) >= {"TPR", "FPR", "mIoU", "DSC", "AER"}
    assert "Table 1" in (tmp_path / "eval" / "tables.md").read_text()


def test_cv_writes_both_tables(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    code, output = invoke("cv", *TINY, "--folds", "2", "--models", "mtl_cosa,resnet", "--out", str(tmp_path / "cv"))
    assert code == 0, output
    tables = (tmp_path / "cv" / "tables.md").read_text()
    assert "MTL-COSA" in tables and "ResNet" in tables and "Table 2" in tables
    assert (tmp_path / "cv" / "roc.png").read_bytes()[:4] == b"\x89PNG"
    folds = json.loads((tmp_path / "cv" / "folds.json").read_text())["folds"]
    assert sorted(n for f in folds for n in f["test"]) == sorted(f"phantom_{i:05d}" for i in range(12))
    # Rerunning finds every fold done and trains nothing.
    mtime = (tmp_path / "cv" / "mtl_cosa" / "fold0" / "last.pt").stat().st_mtime
    code, output = invoke("cv", *TINY, "--folds", "2", "--models", "mtl_cosa,resnet", "--out", str(tmp_path / "cv"))
    assert code == 0 and (tmp_path / "cv" / "mtl_cosa" / "fold0" / "last.pt").stat().st_mtime == mtime
    assert "earlier command" not in (tmp_path / "cv" / "tables.md").read_text()
    # A rerun with another setting trains nothing either, and its tables say whose settings the folds had.
    code, output = invoke("cv", *TINY, "--folds", "2", "--models", "mtl_cosa,resnet", "--lr", "0.05",
                          "--out", str(tmp_path / "cv"))
    tables = (tmp_path / "cv" / "tables.md").read_text()
    assert code == 0 and (tmp_path / "cv" / "mtl_cosa" / "fold0" / "last.pt").stat().st_mtime == mtime
    assert "Folds trained by an earlier command with other settings" in tables
    assert "mtl_cosa: lr 0.001 [0.05]" in tables and "resnet: lr 0.001 [0.05]" in tables


@pytest.mark.parametrize("args, message", [
    (["train", "--data", "busi:/no/such/folder", "--out", "x"], "does not exist"),
    (["train", "--data", "mnist", "--out", "x"], "unknown data spec"),
    (["train", "--preset", "tiny", "--out", "x"], "unknown preset"),
    (["evaluate", "missing.pt"], "checkpoint missing.pt does not exist"),
    (["cv", "--models", "alexnet", "--out", "x"], "unknown model"),
])
def test_bad_input_gives_one_line_not_a_traceback(args: list[str], message: str, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("torch")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1
    assert message in result.output and "Traceback" not in result.output


def test_corrupt_checkpoint_on_the_command_line(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    bad = tmp_path / "bad.pt"
    bad.write_text("this is not a checkpoint")
    result = CliRunner().invoke(cli, ["evaluate", str(bad)])
    assert result.exit_code == 1 and "corrupt" in result.output


def test_phantom_command_writes_a_loadable_folder_and_video(tmp_path: Path) -> None:
    code, output = invoke("phantom", "--out", str(tmp_path / "ph"), "--count", "3", "--size", "64", "--frames", "4")
    assert code == 0, output
    from cosa_edge.data import load_dataset

    assert len(load_dataset(f"folder:{tmp_path / 'ph'}", progress=False)) == 3
    assert (tmp_path / "ph" / "sweep.mp4").stat().st_size > 0


def test_models_lists_the_papers_seven() -> None:
    pytest.importorskip("torch")
    code, output = invoke("models")
    assert code == 0
    assert [line.split()[0] for line in output.splitlines()] == ["uresnet", "resnet", "vgg16", "lenet", "mtl",
                                                                 "mtl_sa", "mtl_cosa"]


def test_help_explains_the_data_specs() -> None:
    code, output = invoke("train", "--help")
    assert code == 0 and "busi:PATH" in output and "--nproc-per-node" in output


def test_help_names_every_preset() -> None:
    from cosa_edge.config import preset_names

    for command in ("train", "cv"):
        code, output = invoke(command, "--help")
        flat = " ".join(output.split())
        assert code == 0 and all(f"{name} (" in flat for name in preset_names()), (command, preset_names())
