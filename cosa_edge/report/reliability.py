"""Reliability diagrams: does a "0.8" mean 80%? Accuracy against confidence, before and after temperature scaling.

Each fold's metrics hold the test fold's reliability bins (``cosa_edge.calibration.reliability``).
The bins of every fold come from the same equal-width edges, so the folds pool exactly: summed
counts, count-weighted accuracy and confidence. The pooled ECE is then the ECE of all test-fold
images together (each image is in one test fold), not the mean of the folds' ECEs.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .figures import save_png
from .tables import DISPLAY_NAMES

#: Folds' bin edges are the same floats from one ``np.linspace``; rounding only guards against a JSON round trip.
_EDGE_DIGITS = 9


def pool_reliability(folds: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One reliability record ({"ece", "bins", "images"}, as ``calibration.reliability``) from the folds' records."""
    totals: dict[tuple[float, float], list[float]] = {}  # (low, high) -> [count, sum of accuracy, sum of confidence]
    for fold in folds:
        for row in fold.get("bins", []):
            key = (round(float(row["low"]), _EDGE_DIGITS), round(float(row["high"]), _EDGE_DIGITS))
            total = totals.setdefault(key, [0.0, 0.0, 0.0])
            total[0] += row["count"]
            total[1] += row["count"] * row["accuracy"]
            total[2] += row["count"] * row["confidence"]
    images = int(sum(total[0] for total in totals.values()))
    bins, ece = [], 0.0
    for (low, high), (count, accuracy_sum, confidence_sum) in sorted(totals.items()):
        if count <= 0:
            continue
        accuracy, confidence = accuracy_sum / count, confidence_sum / count
        ece += count / images * abs(accuracy - confidence)
        bins.append({"low": low, "high": high, "count": int(count), "accuracy": accuracy, "confidence": confidence})
    return {"ece": ece if images else float("nan"), "bins": bins, "images": images}


def fold_reliabilities(
        results: dict[str, dict[str, Any]]) -> dict[str, tuple[list[dict[str, Any]], list[dict[str, Any]]]]:
    """Per model, its folds' test reliability (before, after temperature scaling); models without calibration
    left out."""
    per_model = {}
    for architecture, result in results.items():
        calibrated = [fold["calibration"] for fold in result.get("folds") or [] if fold.get("calibration")]
        if calibrated:
            per_model[architecture] = ([c["before"] for c in calibrated], [c["after"] for c in calibrated])
    return per_model


def plot_reliability(per_model: dict[str, tuple[list[dict[str, Any]], list[dict[str, Any]]]], path: Path,
                     title: str) -> Path:
    """Per model, pooled test-fold accuracy against confidence before (dashed) and after (solid) temperature scaling."""
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and CI
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(5, 5), dpi=120)
    lowest = 1.0
    for index, (architecture, (before, after)) in enumerate(per_model.items()):
        name, colour = DISPLAY_NAMES.get(architecture, architecture), f"C{index}"
        for when, folds, style in (("before", before, "--"), ("after", after, "-")):
            pooled = pool_reliability(folds)
            if not pooled["bins"]:
                continue
            lowest = min(lowest, pooled["bins"][0]["low"])
            axes.plot([b["confidence"] for b in pooled["bins"]], [b["accuracy"] for b in pooled["bins"]],
                      linestyle=style, marker="o", markersize=4, color=colour,
                      label=f"{name}, {when} scaling (ECE {pooled['ece'] * 100:.1f}%)")
    # Two classes: the predicted class's probability is at least 0.5, so the axes start where the bins do.
    lowest = 0.5 if lowest >= 0.5 else 0.0
    axes.plot([lowest, 1], [lowest, 1], linestyle=":", color="grey", label="perfect calibration")
    axes.set(xlabel="Confidence (probability of the predicted class)", ylabel="Accuracy", title=title,
             xlim=(lowest, 1), ylim=(0, 1.01))
    axes.legend(loc="best", fontsize=7)
    return save_png(figure, path)
