"""Figures pooled over the folds of a cross-validation, with their uncertainty.

Fold means hide how few images some figures rest on: BUSI's 133 lesion-free images give about 26 a fold, so one
image moves a fold's presence specificity by four points. Pooled over the folds, each image counts once, and a
Wilson score interval (Wilson 1927; it stays inside 0..1 and keeps its coverage near 0 and 1, where the normal
approximation fails) says how far the true rate may lie from the observed one.

- :func:`pooled_presence`: presence sensitivity and specificity, per fold and pooled, with Wilson 95% intervals;
- :func:`pooled_calibration`: the expected calibration error over every test image of every fold, before and
  after each fold's temperature (a temperature at an end of its search range is not kept).

Torch-free; numpy only.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import BENIGN, MALIGNANT
from ..calibration import apply_temperature, kept_temperature, reliability

#: The normal quantile of a two-sided 95% interval.
Z_95 = 1.959963984540054


def wilson_interval(successes: int, trials: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval of a binomial proportion; (nan, nan) without trials."""
    if trials <= 0:
        return (float("nan"), float("nan"))
    if not 0 <= successes <= trials:
        raise ValueError(f"{successes} successes out of {trials} trials")
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    # Exactly 0 and 1 at the ends (the formula gives them up to rounding).
    return (0.0 if successes == 0 else max(0.0, centre - half), 1.0 if successes == trials else min(1.0, centre + half))


@dataclass(frozen=True)
class Rate:
    """A proportion with its counts and Wilson 95% interval."""

    successes: int
    trials: int

    @property
    def value(self) -> float:
        return self.successes / self.trials if self.trials else float("nan")

    @property
    def interval(self) -> tuple[float, float]:
        return wilson_interval(self.successes, self.trials)

    def cell(self) -> str:
        """'92.3 (85.0–96.4), 120/130': percent, its interval, the counts."""
        if not self.trials:
            return "–"
        low, high = self.interval
        return f"{100 * self.value:.1f} ({100 * low:.1f}–{100 * high:.1f}), {self.successes}/{self.trials}"

    def to_dict(self) -> dict[str, Any]:
        low, high = self.interval
        return {"successes": self.successes, "trials": self.trials, "value": self.value, "low": low, "high": high}


def presence_rates(presence: dict[str, Any]) -> tuple[Rate, Rate]:
    """(sensitivity, specificity) of one fold's presence metrics as counts: lesion images that keep their lesion,
    lesion-free images called lesion-free (the rates were computed from these counts, so rounding recovers them)."""
    lesion, free = int(presence.get("lesion_images", 0)), int(presence.get("lesion_free_images", 0))
    sensitivity, specificity = presence.get("sensitivity"), presence.get("specificity")
    kept = round(sensitivity * lesion) if sensitivity is not None and lesion else 0
    cleared = round(specificity * free) if specificity is not None and free else 0
    return Rate(kept, lesion if sensitivity is not None else 0), Rate(cleared, free if specificity is not None else 0)


def pooled_presence(folds: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Per fold and pooled presence rates of folds that scored presence (None where none did)."""
    per_fold = [presence_rates(fold["presence"]) for fold in folds if "presence" in fold]
    if not per_fold:
        return None
    pooled = (Rate(sum(s.successes for s, _ in per_fold), sum(s.trials for s, _ in per_fold)),
              Rate(sum(c.successes for _, c in per_fold), sum(c.trials for _, c in per_fold)))
    return {"per_fold": per_fold, "pooled": pooled}


def presence_markdown(model: str, presence: dict[str, Any]) -> list[str]:
    """A table of one model's presence rates, each fold and pooled, with Wilson 95% intervals."""
    lines = [f"| {model} | presence sensitivity (%, Wilson 95%), kept/lesion images | "
             "presence specificity (%, Wilson 95%), cleared/lesion-free images |", "|---|---|---|"]
    for index, (sensitivity, specificity) in enumerate(presence["per_fold"]):
        lines.append(f"| fold {index} | {sensitivity.cell()} | {specificity.cell()} |")
    sensitivity, specificity = presence["pooled"]
    lines.append(f"| **pooled** | **{sensitivity.cell()}** | **{specificity.cell()}** |")
    return lines


def pooled_calibration(folds: list[tuple[list[dict[str, Any]], float]]) -> dict[str, Any] | None:
    """ECE over every lesion image of every test fold, before and after each fold's own temperature.

    ``folds``: each fold's prediction records (name, label, probabilities before scaling) and its fitted
    temperature; a temperature at an end of its search range is not kept (calibration.kept_temperature).
    """
    before, after, labels, kept = [], [], [], 0
    for records, temperature in folds:
        lesion = [r for r in records if "probabilities" in r and r["label"] in (BENIGN, MALIGNANT)]
        if not lesion:
            continue
        probabilities = np.array([r["probabilities"] for r in lesion], np.float64)
        used, reason = kept_temperature(float(temperature))
        kept += reason is None
        before.append(probabilities)
        after.append(apply_temperature(probabilities, used))
        labels.append(np.array([r["label"] for r in lesion], int))
    if not labels:
        return None
    all_labels = np.concatenate(labels)
    return {"images": int(all_labels.size), "folds": len(labels), "temperatures_kept": kept,
            "ece_before": reliability(np.concatenate(before), all_labels)["ece"],
            "ece_after": reliability(np.concatenate(after), all_labels)["ece"]}


def pooled_sections(results: dict[str, dict[str, Any]], out_dir: Path,
                    display_names: dict[str, str] | None = None) -> list[str]:
    """Markdown sections for a cross-validation's tables.md: presence pooled over folds with Wilson intervals, and
    the ECE pooled over every test image where the folds' prediction records are beside it
    (OUT/ARCHITECTURE/foldK/predictions.json, K in the folds' order)."""
    names = display_names or {}
    presence_lines: list[str] = []
    calibration_rows: list[str] = []
    for architecture, result in results.items():
        folds = result.get("folds", [])
        label = names.get(architecture, architecture)
        presence = pooled_presence(folds)
        if presence is not None:
            presence_lines += [*presence_markdown(label, presence), ""]
        records = [Path(out_dir) / architecture / f"fold{index}" / "predictions.json" for index in range(len(folds))]
        if folds and all("calibration" in fold for fold in folds) and all(path.is_file() for path in records):
            pooled = pooled_calibration([(json.loads(path.read_text(encoding="utf-8")),
                                          float(fold["calibration"].get("temperature", 1.0)))
                                         for path, fold in zip(records, folds)])
            if pooled is not None:
                calibration_rows.append(f"| {label} | {pooled['images']} | {100 * pooled['ece_before']:.2f} | "
                                        f"{100 * pooled['ece_after']:.2f} | {pooled['temperatures_kept']} of "
                                        f"{pooled['folds']} |")
    sections = []
    if presence_lines:
        sections.append("### Lesion presence pooled over folds\n\nEach test image counted once; Wilson 95% intervals "
                        "(about 26 lesion-free images a fold on BUSI, so a fold's rate moves four points an image).\n\n"
                        + "\n".join(presence_lines))
    if calibration_rows:
        sections.append("### Calibration pooled over folds\n\nExpected calibration error over every test lesion image "
                        "of every fold, before and after each fold's temperature; a temperature fitted at an end of "
                        "its search range is not kept.\n\n| Model | images | ECE before (%) | ECE after (%) | "
                        "temperatures inside the range |\n|---|---|---|---|---|\n" + "\n".join(calibration_rows) + "\n")
    return sections
