"""k-fold cross-validation as in the paper: train on k-1 folds, test on the k-th, average.

Each fold trains for the configured number of epochs and is scored with its
last checkpoint; no test fold is ever used to choose an epoch. A validation
split of the training folds fits the temperature of the class probabilities
and chooses the lesion-presence threshold (with lesion-free images); the test
fold's reliability is reported before and after that temperature. A fold that
already has ``metrics.json`` is not trained again, and a fold that was
interrupted resumes from its ``last.pt``: rerunning the same command finishes
an interrupted cross-validation.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import BENIGN, NO_LESION
from ..calibration import apply_temperature, reliability
from ..ood import mahalanobis
from ..config import TrainConfig
from ..data import Sample
from ..data.splits import near_duplicate_groups, stratified_folds
from ..errors import CosaEdgeError
from ..fileio import atomic_write_json, atomic_write_text
from ..metrics import segmentation_metrics_one
from ..progress import progress_bar
from ..report.paired import COMPARED, REFERENCE, compare_records, paired_markdown
from ..report.reliability import fold_reliabilities, plot_reliability
from ..report.roc import plot_roc
from ..report.tables import aggregate, write_tables
from .checkpoint import Checkpoint, load_model
from .distributed import resolve_device
from .evaluate import Predictions, collect_features, predict, score
from .loop import train
from .runner import data_summary


#: The share of each training fold held out to fit the temperature and choose the presence threshold.
CALIBRATION_VAL_FRACTION = 0.15


@dataclass(frozen=True)
class CVResult:
    out_dir: Path
    results: dict[str, dict[str, Any]]
    files: list[Path]


def make_folds(samples: list[Sample], k: int, seed: int, group_duplicates: bool) -> list[dict[str, Any]]:
    groups = near_duplicate_groups(samples) if group_duplicates else None
    folds = stratified_folds([s.stratum for s in samples], k=k, seed=seed, groups=groups)
    return [{"index": f.index, "test": [samples[i].name for i in f.test]} for f in folds]


def _fold_indices(samples: list[Sample], fold: dict[str, Any]) -> tuple[list[int], list[int]]:
    test_names = set(fold["test"])
    test = [i for i, s in enumerate(samples) if s.name in test_names]
    if len(test) != len(test_names):
        raise CosaEdgeError("folds.json names images that are not in this data set; use a fresh --out for other data")
    return [i for i, s in enumerate(samples) if s.name not in test_names], test


def test_fold_calibration(samples: list[Sample], predictions: Predictions,
                          calibration: dict[str, Any]) -> dict[str, Any]:
    """The test fold's reliability before and after the temperature fitted on the training folds' validation split."""
    lesion = np.array([s.has_lesion for s in samples], bool)
    if predictions.probabilities is None or not lesion.any():
        return {}
    probabilities, labels = predictions.probabilities[lesion], predictions.labels[lesion]
    temperature = float(calibration.get("temperature", 1.0))
    return {"calibration": {"temperature": temperature, "fitted_on": calibration.get("fitted_on", "none"),
                            "before": reliability(probabilities, labels),
                            "after": reliability(apply_temperature(probabilities, temperature), labels)}}


def test_fold_out_of_distribution(model: Any, samples: list[Sample], checkpoint: Checkpoint, device: Any
                                  ) -> dict[str, Any]:
    """The share of the test fold's (in-distribution) images that the out-of-distribution threshold lets through."""
    if not checkpoint.has_ood_score:
        return {}
    ood = checkpoint.ood
    features = collect_features(model, [s.image for s in samples], checkpoint.config.model.image_size, device)
    scores = mahalanobis(features, ood["mean"].numpy(), ood["precision"].numpy())
    return {"out_of_distribution": {"threshold": float(ood["threshold"]), "chosen_on": ood.get("chosen_on", ""),
                                    "test_images": len(samples), "kept": float((scores <= ood["threshold"]).mean())}}


def cross_validate(config: TrainConfig, samples: list[Sample], data_spec: str, out_dir: Path, *, folds: int = 5,
                   architectures: list[str] | None = None, group_duplicates: bool = True,
                   progress: bool = True) -> CVResult:
    out_dir = Path(out_dir)
    architectures = architectures or [config.model.architecture]
    # Scored with each fold's last epoch, so no validation split is needed to pick an epoch; a validation
    # split of the training folds (never the test fold) fits the temperature and the presence threshold.
    config = config.replace(val_fraction=config.val_fraction or CALIBRATION_VAL_FRACTION)
    device = resolve_device(config.device)
    fold_list = _fold_list(out_dir, samples, folds, config.seed, group_duplicates, data_spec)
    results: dict[str, dict[str, Any]] = {}
    curves: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for architecture in architectures:
        arch_config = config.replace(architecture=architecture)
        per_fold: list[dict[str, Any]] = []
        fold_curves: list[tuple[np.ndarray, np.ndarray]] = []
        for fold in progress_bar(fold_list, desc=f"cross-validating {architecture}", unit="fold", disable=not progress):
            fold_dir = out_dir / architecture / f"fold{fold['index']}"
            if not (fold_dir / "metrics.json").exists():
                _train_and_score_fold(arch_config, samples, fold, fold_dir, data_spec, device, progress)
            per_fold.append(json.loads((fold_dir / "metrics.json").read_text()))
            curve = _fold_roc_points(fold_dir)
            if curve is not None:
                fold_curves.append(curve)
        results[architecture] = {"folds": per_fold, "aggregate": aggregate(per_fold)}
        if fold_curves:
            curves[architecture] = (np.concatenate([c[0] for c in fold_curves]),
                                    np.concatenate([c[1] for c in fold_curves]))
    files = _write_reports(out_dir, results, curves, config, architectures, fold_list, data_spec,
                           f"{len(samples)} images, {folds} stratified folds"
                           f"{' (near-duplicates kept in one fold)' if group_duplicates else ''}")
    return CVResult(out_dir=out_dir, results=results, files=files)


def _fold_list(out_dir: Path, samples: list[Sample], folds: int, seed: int, group_duplicates: bool,
               data_spec: str) -> list[dict[str, Any]]:
    """The folds of ``out_dir``'s folds.json, made and written on the first run (so a resumed run keeps them)."""
    folds_file = out_dir / "folds.json"
    if folds_file.exists():
        fold_list = json.loads(folds_file.read_text())["folds"]
        if len(fold_list) != folds:
            raise CosaEdgeError(f"{out_dir} holds a {len(fold_list)}-fold run; use --folds {len(fold_list)} "
                                "or another --out")
        return fold_list
    fold_list = make_folds(samples, folds, seed, group_duplicates)
    atomic_write_json(folds_file, {"data": data_summary(data_spec, samples), "group_near_duplicates": group_duplicates,
                                   "folds": fold_list})
    return fold_list


def _train_and_score_fold(config: TrainConfig, samples: list[Sample], fold: dict[str, Any], fold_dir: Path,
                          data_spec: str, device: Any, progress: bool) -> None:
    """Train one fold (resuming its last.pt) and score its last epoch on the test fold: predictions.json, then
    metrics.json last, whose presence marks the fold as done."""
    train_idx, test_idx = _fold_indices(samples, fold)
    train(config, [samples[i] for i in train_idx], fold_dir, resume=True,
          data_summary=data_summary(data_spec, samples), progress=progress)
    model, checkpoint = load_model(fold_dir / "last.pt", device)
    test_samples = [samples[i] for i in test_idx]
    predictions = predict(model, test_samples, config.model.image_size, device)
    atomic_write_json(fold_dir / "predictions.json", records_with_dice(predictions, test_samples))
    metrics = score(test_samples, predictions, checkpoint.min_lesion_share)
    metrics.update(test_fold_calibration(test_samples, predictions, checkpoint.calibration))
    metrics.update(test_fold_out_of_distribution(model, test_samples, checkpoint, device))
    if checkpoint.presence:
        metrics["presence_chosen_on"] = checkpoint.presence.get("chosen_on", "")
    atomic_write_json(fold_dir / "metrics.json", metrics)


def _fold_roc_points(fold_dir: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """The test fold's labels and benign probabilities (the paper's positive class); None without classes."""
    records = json.loads((fold_dir / "predictions.json").read_text())
    classified = [r for r in records if r["label"] != NO_LESION]  # lesion-free images have no class
    if not classified or "probabilities" not in classified[0]:
        return None
    return (np.array([r["label"] for r in classified]),
            np.array([r["probabilities"][BENIGN] for r in classified]))


def _write_reports(out_dir: Path, results: dict[str, dict[str, Any]], curves: dict[str, tuple[np.ndarray, np.ndarray]],
                   config: TrainConfig, architectures: list[str], fold_list: list[dict[str, Any]], data_spec: str,
                   data_description: str) -> list[Path]:
    """The tables, the ROC and reliability plots and the paired comparisons; the files written."""
    preamble = (f"Cross-validation of {', '.join(architectures)} on `{data_spec}`: {data_description}; "
                f"encoder {config.model.encoder}, {config.model.image_size}x{config.model.image_size}, "
                f"{config.epochs} epochs, batch {config.batch_size}, seed {config.seed}, "
                "scored with each fold's last epoch.")
    departures = recorded_departures(out_dir, architectures, fold_list, config)
    if departures:
        preamble += (" Folds trained by an earlier command with other settings (as their config.json records them; "
                     "this command's value in brackets): " + "; ".join(departures) + ".")
    # The plots come first so that tables.md can show the ones that were drawn.
    plots: list[Path] = []
    figures: list[tuple[str, str]] = []
    if curves:
        plots.append(plot_roc(curves, out_dir / "roc.png", title=f"ROC, benign positive ({data_spec.split(':')[0]})"))
        figures.append(("ROC", "roc.png"))
    reliabilities = fold_reliabilities(results)
    if reliabilities:
        plots.append(plot_reliability(reliabilities, out_dir / "reliability.png",
                                      title=f"Reliability, test folds pooled ({data_spec.split(':')[0]})"))
        figures.append(("reliability", "reliability.png"))
    files = [*write_tables(results, data_spec, out_dir, preamble=preamble, figures=figures), *plots]
    return files + write_paired_comparisons(out_dir, architectures, fold_list)


#: Settings that do not change what a fold learns: where it ran, how often it saved and validated.
_NOT_TRAINING_SETTINGS = {"architecture", "device", "num_workers", "save_every", "validate_every"}


def _flat_settings(config: dict[str, Any]) -> dict[str, Any]:
    settings = {k: v for k, v in config.items() if k != "model"}
    settings.update(config.get("model", {}))
    return {k: v for k, v in settings.items() if k not in _NOT_TRAINING_SETTINGS}


def recorded_departures(out_dir: Path, architectures: list[str], fold_list: list[dict[str, Any]],
                        config: TrainConfig) -> list[str]:
    """Per model, the training settings its folds recorded that differ from ``config``.

    cv trains only the folds it lacks, so a table can hold folds trained by an earlier command (VGG-16 at
    another learning rate, say); the table's preamble must not claim this command's settings for them. A
    setting an older fold did not record is not guessed.
    """
    wanted = _flat_settings(config.to_dict())
    notes = []
    for architecture in architectures:
        recorded: dict[str, set[str]] = {}
        for fold in fold_list:
            config_file = out_dir / architecture / f"fold{fold['index']}" / "config.json"
            if not config_file.exists():
                continue
            for key, value in _flat_settings(json.loads(config_file.read_text()).get("config", {})).items():
                if key in wanted and value != wanted[key]:
                    recorded.setdefault(key, set()).add(json.dumps(value))
        if recorded:
            notes.append(f"{architecture}: " + ", ".join(
                f"{key} {' or '.join(sorted(values))} [{json.dumps(wanted[key])}]"
                for key, values in sorted(recorded.items())))
    return notes


def records_with_dice(predictions: Predictions, samples: list[Sample]) -> list[dict[str, Any]]:
    """Prediction records, each lesion image's with its Dice (as score() computes it), for paired tests."""
    records = predictions.to_records()
    if predictions.masks is not None:
        for record, mask, sample in zip(records, predictions.masks, samples):
            if sample.has_lesion:
                record["dice"] = float(segmentation_metrics_one(mask, sample.mask)["DSC"])
    return records


def write_paired_comparisons(out_dir: Path, architectures: list[str], fold_list: list[dict[str, Any]]) -> list[Path]:
    """paired.json and paired.md: MTL-COSA against MTL and MTL-SA on the same images (report/paired.py)."""
    others = [a for a in COMPARED if a in architectures]
    if REFERENCE not in architectures or not others:
        return []

    def pooled(architecture: str) -> list[dict[str, Any]]:
        return [r for fold in fold_list for r in json.loads(
            (out_dir / architecture / f"fold{fold['index']}" / "predictions.json").read_text())]
    reference = pooled(REFERENCE)
    comparisons = {other: compare_records(reference, pooled(other), benign=BENIGN, no_lesion=NO_LESION)
                   for other in others}
    atomic_write_json(out_dir / "paired.json", {other: [t.to_dict() for t in tests]
                                                for other, tests in comparisons.items()})
    atomic_write_text(out_dir / "paired.md", paired_markdown(comparisons, REFERENCE))
    return [out_dir / "paired.json", out_dir / "paired.md"]
