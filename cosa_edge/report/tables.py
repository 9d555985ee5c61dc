"""Cross-validation results in the layout of the paper's Tables 1 and 2: Markdown, CSV and JSON."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..calibration import kept_temperature
from ..contract import INTENDED_USE
from ..fileio import atomic_write_json, atomic_write_text
from ..metrics import CLASSIFICATION_KEYS, SEGMENTATION_KEYS
from ..presence import TARGET_SENSITIVITY
from . import paper
from .pooled import pooled_sections

CLINICAL_KEYS = ("sensitivity", "specificity", "PPV", "NPV", "ACC")
DISPLAY_NAMES = {"uresnet": "UResNet", "resnet": "ResNet", "vgg16": "VGG-16", "lenet": "LeNet",
                 "mtl": "MTL", "mtl_sa": "MTL-SA", "mtl_cosa": "MTL-COSA"}
TASK_TYPE = {"uresnet": "ST", "resnet": "ST", "vgg16": "ST", "lenet": "ST", "mtl": "MT", "mtl_sa": "MT",
             "mtl_cosa": "MT"}

PRESENCE_KEYS = ("min_lesion_share", "sensitivity", "specificity")
#: The share of held-out in-distribution images the out-of-distribution gate must let through.
OOD_TARGET_KEPT = 0.95
CALIBRATION_KEYS = ("temperature", "ece_before", "ece_after", "temperature_kept")
#: The project's target for lesion presence per image: few lesions lost, few healthy images flagged.
PRESENCE_TARGET_SENSITIVITY = TARGET_SENSITIVITY  # the share the threshold is chosen to keep on validation
PRESENCE_TARGET_SPECIFICITY = 0.90
#: Means that print as the target (e.g. 95.00) count as meeting it, whatever the last bit of a float sum.
_TARGET_TOLERANCE = 1e-9


def mean_std(values: list[float]) -> tuple[float, float]:
    array = np.array([v for v in values if v is not None and np.isfinite(v)], dtype=np.float64)
    if array.size == 0:
        return float("nan"), float("nan")
    return float(array.mean()), float(array.std(ddof=1)) if array.size > 1 else 0.0


def spread(values: list[float | None]) -> dict[str, float]:
    """Mean, sample SD, min and max over the folds that have a finite value (a fold may lack one)."""
    mean, std = mean_std(values)
    finite = [float(v) for v in values if v is not None and np.isfinite(v)]
    return {"mean": mean, "std": std, "min": min(finite, default=float("nan")),
            "max": max(finite, default=float("nan"))}


def _calibration_figures(calibration: dict[str, Any]) -> dict[str, float | None]:
    """One fold's temperature and test-fold ECE before and after it, flattened for ``spread``.

    A temperature fitted at an end of its search range is not kept (calibration.kept_temperature): the fold's
    ECE "after" is then its ECE before, and ``temperature_kept`` is 0.
    """
    fitted = calibration.get("temperature")
    before = calibration.get("before", {}).get("ece")
    kept = fitted is None or kept_temperature(float(fitted))[1] is None
    return {"temperature": fitted, "ece_before": before,
            "ece_after": calibration.get("after", {}).get("ece") if kept else before,
            "temperature_kept": 1.0 if kept else 0.0}


def _kept_share(kept: dict[str, float] | None) -> str:
    """The share of folds whose fitted temperature was kept (not at an end of its search range)."""
    if not kept or kept.get("mean") is None or not np.isfinite(kept["mean"]):
        return "–"
    return f"{kept['mean']:.0%}"


def aggregate(fold_metrics: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, float]]]:
    """Mean and sample standard deviation over folds, per section (segmentation, classification_...).

    Lesion presence and calibration are added only where the folds scored them (lesion-free images,
    a classifier), so older metrics aggregate exactly as before.
    """
    result: dict[str, dict[str, dict[str, float]]] = {}
    sections = {"segmentation": SEGMENTATION_KEYS, "classification_paper": CLASSIFICATION_KEYS,
                "classification_clinical": CLINICAL_KEYS}
    for section, keys in sections.items():
        present = [m[section] for m in fold_metrics if section in m]
        if present:
            result[section] = {}
            for key in keys:
                mean, std = mean_std([m[key] for m in present])
                result[section][key] = {"mean": mean, "std": std}
    aucs = [m["auc"] for m in fold_metrics if "auc" in m]
    if aucs:
        mean, std = mean_std(aucs)
        result["auc"] = {"AUC": {"mean": mean, "std": std}}
    presence = [m["presence"] for m in fold_metrics if m.get("presence")]
    if presence:
        result["presence"] = {key: spread([p.get(key) for p in presence]) for key in PRESENCE_KEYS}
    calibration = [_calibration_figures(m["calibration"]) for m in fold_metrics if m.get("calibration")]
    if calibration:
        result["calibration"] = {key: spread([c[key] for c in calibration]) for key in CALIBRATION_KEYS}
    ood = [m["out_of_distribution"] for m in fold_metrics if m.get("out_of_distribution")]
    if ood:
        result["out_of_distribution"] = {"kept": spread([o.get("kept") for o in ood])}
    return result


def _cell(entry: dict[str, float] | None, percent: bool = True, digits: int = 2) -> str:
    if entry is None or not np.isfinite(entry["mean"]):
        return "–"
    scale = 100.0 if percent else 1.0
    return f"{entry['mean'] * scale:.{digits}f} ± {entry['std'] * scale:.{digits}f}"


def _range_cell(entry: dict[str, float] | None, percent: bool = True, digits: int = 2) -> str:
    """``_cell`` followed by the fold range, e.g. ``95.00 ± 7.07 (90.00–100.00)``."""
    cell = _cell(entry, percent, digits)
    if cell == "–" or entry is None or "min" not in entry:
        return cell
    scale = 100.0 if percent else 1.0
    return f"{cell} ({entry['min'] * scale:.{digits}f}–{entry['max'] * scale:.{digits}f})"


def presence_target(presence: dict[str, dict[str, float]]) -> str:
    """"met" where the mean sensitivity and specificity over folds reach the target, "–" where one is unknown."""
    sensitivity = presence.get("sensitivity", {}).get("mean", float("nan"))
    specificity = presence.get("specificity", {}).get("mean", float("nan"))
    if not (np.isfinite(sensitivity) and np.isfinite(specificity)):
        return "–"
    met = (sensitivity >= PRESENCE_TARGET_SENSITIVITY - _TARGET_TOLERANCE
           and specificity >= PRESENCE_TARGET_SPECIFICITY - _TARGET_TOLERANCE)
    return "met" if met else "not met"


def _paper_cell(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def _markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def build_tables(results: dict[str, dict[str, Any]], data_spec: str) -> dict[str, tuple[list[str], list[list[str]]]]:
    """Rows of Table 1, Table 2 (paper convention) and the clinical table; ours beside the paper's."""
    key = paper.dataset_key(data_spec)
    tables: dict[str, tuple[list[str], list[list[str]]]] = {}
    specs = [
        ("table1_segmentation", "segmentation", SEGMENTATION_KEYS, paper.TABLE1),
        ("table2_classification", "classification_paper", CLASSIFICATION_KEYS, paper.TABLE2),
        ("table2_clinical", "classification_clinical", CLINICAL_KEYS, None),
    ]
    for name, section, keys, published in specs:
        header = ["Type", "Method", "Source", *keys] + (["AUC"] if section != "segmentation" else [])
        rows = []
        for architecture, result in results.items():
            aggregate_ = result["aggregate"]
            if section not in aggregate_:
                continue
            label = DISPLAY_NAMES.get(architecture, architecture)
            ours = [_cell(aggregate_[section].get(k)) for k in keys]
            if section != "segmentation":
                ours.append(_cell(aggregate_.get("auc", {}).get("AUC"), percent=False))
            rows.append([TASK_TYPE.get(architecture, ""), label, "cosa-edge", *ours])
            if published is not None and key is not None and architecture in published[key]:
                theirs = [_paper_cell(published[key][architecture].get(k)) for k in keys]
                if section != "segmentation":
                    theirs.append(_paper_cell(paper.AUC[key].get(architecture)))
                rows.append([TASK_TYPE.get(architecture, ""), label, "paper", *theirs])
        if rows:
            tables[name] = (header, rows)
    return tables


def _presence_chosen_on(fold: dict[str, Any]) -> str | None:
    return fold.get("presence_chosen_on") if fold.get("presence") else None


def _temperature_fitted_on(fold: dict[str, Any]) -> str | None:
    return (fold.get("calibration") or {}).get("fitted_on")


def _ood_chosen_on(fold: dict[str, Any]) -> str | None:
    return (fold.get("out_of_distribution") or {}).get("chosen_on")


#: Per new table: what the per-fold sentence says, and where a fold's metrics keep it.
_FOLD_NOTES: dict[str, tuple[str, Callable[[dict[str, Any]], str | None]]] = {
    "presence": ("threshold chosen on", _presence_chosen_on),
    "calibration": ("temperature fitted on", _temperature_fitted_on),
    "ood": ("threshold chosen on", _ood_chosen_on),
}


def _without_figures(sentence: str) -> str:
    """A fold's sentence without its parenthesised figures, so that folds which decided alike count as one."""
    return re.sub(r"\s+", " ", re.sub(r"\s*\([^()]*\)", "", sentence)).strip()


def _fold_sentences(folds: list[dict[str, Any]], extract: Callable[[dict[str, Any]], str | None]) -> str:
    """The distinct per-fold sentences, with how many folds said each (a default, not a choice, is worth seeing).

    Figures in parentheses (a cross-fitted likelihood, a fitted temperature) differ from fold to fold and made
    five near-identical sentences of five folds; they stay in results.json, and the note says so.
    """
    counts: dict[str, int] = {}
    trimmed = False
    for fold in folds:
        sentence = extract(fold)
        if sentence:
            short = _without_figures(sentence)
            trimmed = trimmed or short != sentence
            counts[short] = counts.get(short, 0) + 1
    notes = "; ".join(f"{sentence} ({n} fold{'s' if n > 1 else ''})" for sentence, n in counts.items())
    return notes + (" (each fold's figures: results.json)" if trimmed else "")


def build_presence_tables(results: dict[str, dict[str, Any]]) -> dict[str, tuple[list[str], list[list[str]]]]:
    """Rows of the lesion-presence and calibration tables, for the models whose folds scored them.

    Kept apart from ``build_tables`` (the paper's tables), which the demo prints as they are.
    """
    presence_rows, calibration_rows, ood_rows = [], [], []
    for architecture, result in results.items():
        aggregate_ = result["aggregate"]
        label = DISPLAY_NAMES.get(architecture, architecture)
        if "presence" in aggregate_:
            presence = aggregate_["presence"]
            # The share of the image is small (~0.2%), so three decimals of a percent.
            presence_rows.append([label, _range_cell(presence.get("min_lesion_share"), digits=3),
                                  _range_cell(presence.get("sensitivity")), _range_cell(presence.get("specificity")),
                                  presence_target(presence)])
        if "calibration" in aggregate_:
            calibration = aggregate_["calibration"]
            calibration_rows.append([label, _cell(calibration.get("temperature"), percent=False),
                                     _cell(calibration.get("ece_before")), _cell(calibration.get("ece_after")),
                                     _kept_share(calibration.get("temperature_kept"))])
        if "out_of_distribution" in aggregate_:
            kept = aggregate_["out_of_distribution"]["kept"]
            met = kept.get("mean") is not None and kept["mean"] >= OOD_TARGET_KEPT - 1e-9
            ood_rows.append([label, _range_cell(kept), "met" if met else "not met"])
    tables: dict[str, tuple[list[str], list[list[str]]]] = {}
    if presence_rows:
        tables["presence"] = (["Model", "min lesion share (% of image)",
                               "presence sensitivity (lesion images that keep their lesion)",
                               "presence specificity (lesion-free images called lesion-free)", "target"],
                              presence_rows)
    if calibration_rows:
        tables["calibration"] = (["Model", "temperature", "ECE before (%)", "ECE after (%)",
                                  "folds whose temperature lies inside its range"], calibration_rows)
    if ood_rows:
        tables["ood"] = (["Model", "test-fold images the gate lets through (%)", "target"], ood_rows)
    return tables


def _fold_notes(results: dict[str, dict[str, Any]], name: str) -> str:
    """Per model, how its folds chose the presence threshold or fitted the temperature."""
    what, extract = _FOLD_NOTES[name]
    lines = []
    for architecture, result in results.items():
        sentences = _fold_sentences(result.get("folds") or [], extract)
        if sentences:
            lines.append(f"- {DISPLAY_NAMES.get(architecture, architecture)}, {what}: {sentences}.")
    return "\n".join(lines) + "\n" if lines else ""


CAPTIONS = {
    "presence": ("Per image, at each fold's presence threshold (a lesion is present where the predicted mask covers "
                 "at least this share of the image), chosen on the fold's validation split, or the default where "
                 "that could not be done (said below); scored on the test fold's lesion and lesion-free images: "
                 "mean ± sample SD over folds (min–max), %. "
                 f"Target: specificity ≥ {PRESENCE_TARGET_SPECIFICITY:.0%} and sensitivity ≥ "
                 f"{PRESENCE_TARGET_SENSITIVITY:.0%}, judged on the means."),
    "calibration": ("Temperature fitted on each fold's validation split; expected calibration error (ECE, %, "
                    "equal-width confidence bins) of the benign/malignant probabilities on the test fold's lesion "
                    "images before and after it; mean ± sample SD over folds. Temperature scaling changes no "
                    "decision, only what the probabilities claim."),
    "ood": ("The out-of-distribution score's threshold is chosen on each fold's validation split to let 99% of "
            "those images through; the share of the test fold's images (all in distribution: the same data set) "
            f"it lets through: mean ± sample SD over folds (min–max). Target: ≥ {OOD_TARGET_KEPT:.0%}."),
}


#: Each table's CSV name (without .csv) and its title in tables.md.
TABLE_TITLES = {
    "table1_segmentation": "Table 1. Tumour segmentation (%), mean ± std over folds, per-image averages",
    "table2_classification": ("Table 2. Tumour classification (%), BENIGN as the positive class "
                              "(the paper's convention)"),
    "table2_clinical": "Clinical convention: MALIGNANT as the positive class (%)",
    "presence": "Lesion presence per image (normal images against lesion images)",
    "calibration": "Calibration of the class probabilities (test folds, lesion images)",
    "ood": "The out-of-distribution gate on held-out images of the training data set",
}
#: Every file write_tables may write (the CSVs of the tables the results hold).
TABLE_FILES = ("tables.md", "results.json", *(f"{name}.csv" for name in TABLE_TITLES))


def write_tables(results: dict[str, dict[str, Any]], data_spec: str, out_dir: Path, preamble: str = "",
                 figures: Sequence[tuple[str, str]] = ()) -> list[Path]:
    """Write tables.md, one CSV per table and results.json into ``out_dir``.

    ``figures``: (alt text, file name) of plots beside tables.md, shown at its end.
    """
    out_dir = Path(out_dir)
    tables = {**build_tables(results, data_spec), **build_presence_tables(results)}
    # Every report says what the figures may be used for, first.
    markdown = [f"*{INTENDED_USE}*\n", *([preamble.rstrip() + "\n"] if preamble else [])]
    written = []
    for name, (header, rows) in tables.items():
        caption = f"{CAPTIONS[name]}\n\n" if name in CAPTIONS else ""
        notes = f"\n{_fold_notes(results, name)}" if name in CAPTIONS else ""
        markdown.append(f"### {TABLE_TITLES[name]}\n\n{caption}{_markdown_table(header, rows)}{notes}")
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(header)
        writer.writerows(rows)
        atomic_write_text(out_dir / f"{name}.csv", buffer.getvalue())
        written.append(out_dir / f"{name}.csv")
    markdown += pooled_sections(results, out_dir, DISPLAY_NAMES)
    markdown += [f"![{alt}]({file_name})\n" for alt, file_name in figures]
    atomic_write_text(out_dir / "tables.md", "\n".join(markdown))
    atomic_write_json(out_dir / "results.json", {"data": data_spec, "intended_use": INTENDED_USE, "results": results})
    return [out_dir / "tables.md", out_dir / "results.json", *written]
