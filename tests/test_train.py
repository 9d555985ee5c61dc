from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from cosa_edge.config import TrainConfig, load_preset  # noqa: E402
from cosa_edge.data.phantom import make_phantom_dataset  # noqa: E402
from cosa_edge.errors import CosaEdgeError  # noqa: E402
from cosa_edge.train.checkpoint import load_checkpoint, load_model  # noqa: E402
from cosa_edge.train.evaluate import predict, score  # noqa: E402
from cosa_edge.train.loop import train  # noqa: E402


def tiny_config(**changes: object) -> TrainConfig:
    # Constant rate, paper's loss: these tests are about the loop (resume, checkpoints), not the recipe, and
    # the resume test changes --epochs, which moves a schedule's curve (tests/test_recipe.py tests that).
    base = load_preset("edge").replace(image_size=64, decoder_channels=(32, 16, 16, 8), batch_size=4,
                                       val_fraction=0.0, device="cpu", lr=1e-4, lr_schedule="constant",
                                       dice_weight=0.0, presence_weight=0.0, balance_classes=False)
    return base.replace(**changes)


def test_tiny_model_overfits_eight_phantoms(tmp_path: Path) -> None:
    samples = make_phantom_dataset(8, seed=3, size=(64, 64))
    # The edge preset's decoder: the narrower test decoder stops short of Dice 0.9 in 150 steps.
    config = tiny_config(epochs=150, batch_size=8, lr=1e-3, augment=False, save_every=1000,
                         decoder_channels=(128, 64, 32, 16))
    train(config, samples, tmp_path / "run", progress=False)
    model, _ = load_model(tmp_path / "run" / "last.pt")
    metrics = score(samples, predict(model, samples, 64, torch.device("cpu")))
    assert metrics["segmentation"]["DSC"] > 0.9
    assert metrics["classification_paper"]["ACC"] == 1.0


def test_resume_continues_exactly(tmp_path: Path) -> None:
    samples = make_phantom_dataset(12, seed=5, size=(64, 64))
    config = tiny_config(epochs=2)
    train(config, samples, tmp_path / "straight", progress=False)
    train(config.replace(epochs=1), samples, tmp_path / "interrupted", progress=False)
    # The first run stopped after epoch 1; a log line of an epoch that never reached a checkpoint is dropped.
    log = tmp_path / "interrupted" / "log.jsonl"
    log.write_text(log.read_text() + json.dumps({"epoch": 2, "loss": 9.9}) + "\n")
    train(config, samples, tmp_path / "interrupted", resume=True, progress=False)
    straight = load_checkpoint(tmp_path / "straight" / "last.pt")
    resumed = load_checkpoint(tmp_path / "interrupted" / "last.pt")
    assert resumed.epoch == 2
    assert resumed.weights_sha256 == straight.weights_sha256
    epochs = [json.loads(line)["epoch"] for line in log.read_text().splitlines()]
    assert epochs == [1, 2] and json.loads(log.read_text().splitlines()[1])["loss"] != 9.9


def test_run_folder_is_never_overwritten_and_resume_checks_settings(tmp_path: Path) -> None:
    samples = make_phantom_dataset(8, seed=1, size=(64, 64))
    config = tiny_config(epochs=1)
    train(config, samples, tmp_path / "run", progress=False)
    before = (tmp_path / "run" / "last.pt").read_bytes()
    with pytest.raises(CosaEdgeError, match="already holds a training run"):
        train(config, samples, tmp_path / "run", progress=False)
    with pytest.raises(CosaEdgeError, match="other settings"):
        train(config.replace(lr=0.5), samples, tmp_path / "run", resume=True, progress=False)
    assert (tmp_path / "run" / "last.pt").read_bytes() == before


def test_validation_split_selects_best_and_logs_metrics(tmp_path: Path) -> None:
    samples = make_phantom_dataset(12, seed=2, size=(64, 64))
    train(tiny_config(epochs=2, val_fraction=0.34), samples, tmp_path / "run", progress=False)
    records = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]
    assert {"segmentation", "classification_paper", "classification_clinical"} <= set(records[0]["val"])
    best = load_checkpoint(tmp_path / "run" / "best.pt")
    assert best.selected_by == "validation score" and best.optimizer is None
    assert best.epoch == max(records, key=lambda r: r["score"])["epoch"]


def test_validation_every_few_epochs_always_validates_the_last_and_chooses_among_validated(tmp_path: Path) -> None:
    samples = make_phantom_dataset(12, seed=2, size=(64, 64))
    train(tiny_config(epochs=5, val_fraction=0.34, validate_every=2), samples, tmp_path / "run", progress=False)
    records = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2, 3, 4, 5]
    assert [r["epoch"] for r in records if "val" in r] == [2, 4, 5]  # every second, and the last
    assert all("score" not in r for r in records if "val" not in r)
    best = load_checkpoint(tmp_path / "run" / "best.pt")
    assert best.epoch in (2, 4, 5)
    assert best.epoch == max((r for r in records if "score" in r), key=lambda r: r["score"])["epoch"]
    # The last checkpoint carries the fits of the last epoch's validation pass.
    last = load_checkpoint(tmp_path / "run" / "last.pt")
    assert last.calibration == records[-1]["val"]["calibration"]


def test_bad_checkpoints_give_clear_errors(tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"\x00" * 100)
    with pytest.raises(CosaEdgeError, match="corrupt or not a PyTorch checkpoint"):
        load_checkpoint(corrupt)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weight": torch.zeros(2)}, foreign)
    with pytest.raises(CosaEdgeError, match="not a cosa-edge checkpoint"):
        load_checkpoint(foreign)
    with pytest.raises(CosaEdgeError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")


def _raw(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def _same_entries(a: object, b: object) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same_entries(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same_entries(x, y) for x, y in zip(a, b))
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and torch.equal(a, b)
    return a == b


def test_the_checkpoint_record_reads_and_writes_back_every_entry(tmp_path: Path) -> None:
    """The typed record is a view of the file's dict: read and written back, a file (with an entry this version
    does not know, as a newer one may add) is unchanged entry by entry, and typed fields read what the file says."""
    from dataclasses import replace

    train(tiny_config(epochs=1, val_fraction=0.34), make_phantom_dataset(12, seed=2, size=(64, 64)),
          tmp_path / "run", progress=False)
    path = tmp_path / "run" / "last.pt"
    raw = {**_raw(path), "reviewer_note": "kept as it is"}
    torch.save(raw, path)
    checkpoint = load_checkpoint(path)
    assert checkpoint.extra == {"reviewer_note": "kept as it is"}
    assert checkpoint.epoch == 1 and checkpoint.tasks == ("segmentation", "classification")
    assert checkpoint.min_lesion_share == raw["presence"]["min_lesion_share"]
    assert checkpoint.temperature == raw["calibration"]["temperature"]
    assert not checkpoint.has_ood_score and checkpoint.ood["chosen_on"].startswith("none: 4 validation images")
    checkpoint.write(tmp_path / "again.pt")
    assert _same_entries(_raw(tmp_path / "again.pt"), raw)
    replace(checkpoint, selected_by="a test").write(tmp_path / "changed.pt")
    assert not _same_entries(_raw(tmp_path / "changed.pt"), raw)  # the comparison can fail


def test_a_checkpoint_missing_an_entry_every_run_writes_is_refused_by_name(tmp_path: Path) -> None:
    train(tiny_config(epochs=1), make_phantom_dataset(4, seed=1, size=(64, 64)), tmp_path / "run", progress=False)
    raw = _raw(tmp_path / "run" / "last.pt")
    del raw["model"]
    torch.save(raw, tmp_path / "cut.pt")
    with pytest.raises(CosaEdgeError, match="lacks or garbles an entry"):
        load_checkpoint(tmp_path / "cut.pt")
    # A best.pt (no optimizer) copied over last.pt cannot be resumed from; the run says so.
    (tmp_path / "run" / "last.pt").write_bytes((tmp_path / "run" / "best.pt").read_bytes())
    with pytest.raises(CosaEdgeError, match="holds no optimizer state"):
        train(tiny_config(epochs=2), make_phantom_dataset(4, seed=1, size=(64, 64)), tmp_path / "run",
              resume=True, progress=False)


class _Exploit:
    """An object whose unpickling would run code; weights_only loading must refuse it."""

    def __reduce__(self) -> tuple:
        return (print, ("code ran while loading",))


def test_checkpoints_are_loaded_as_data_not_code(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"format": "cosa-edge-checkpoint", "payload": _Exploit()}, path)
    with pytest.raises(CosaEdgeError, match="corrupt or not a PyTorch checkpoint"):
        load_checkpoint(path)
    assert "code ran" not in capsys.readouterr().out


def test_sync_bn_on_cpu_is_refused_with_a_reason(tmp_path: Path) -> None:
    with pytest.raises(CosaEdgeError, match="SyncBatchNorm"):
        train(tiny_config(sync_batchnorm=True), make_phantom_dataset(4, size=(64, 64)), tmp_path, progress=False)


def test_validation_split_keeps_near_duplicates_with_their_twins() -> None:
    """BUSI saves some lesions twice; a validation image whose twin trains would make the validation split (on
    which presence, temperature and the out-of-distribution threshold are chosen) easier than new patients."""
    import dataclasses

    from cosa_edge.train.loop import split_validation

    originals = make_phantom_dataset(20, seed=9, size=(64, 64))
    twins = [dataclasses.replace(s, name=s.name + " copy",
                                 image=np.clip(s.image.astype(int) + 3, 0, 255).astype(np.uint8))
             for s in originals]
    train_part, validation = split_validation(originals + twins, tiny_config(val_fraction=0.3))
    assert validation and train_part
    trained = {s.name.removesuffix(" copy") for s in train_part}
    assert not trained & {s.name.removesuffix(" copy") for s in validation}
