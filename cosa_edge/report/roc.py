"""ROC curves in the manner of the paper's Fig. 3."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import BENIGN
from ..metrics import auc, roc_curve
from .figures import save_png
from .tables import DISPLAY_NAMES


def plot_roc(curves: dict[str, tuple[np.ndarray, np.ndarray]], path: Path, title: str) -> Path:
    """One curve per model from (labels, benign probabilities) pooled over the test folds."""
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and CI
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(5, 5), dpi=120)
    for architecture, (labels, benign_scores) in curves.items():
        fpr, tpr, _ = roc_curve(labels, benign_scores, positive=BENIGN)
        axes.plot(fpr, tpr, label=f"{DISPLAY_NAMES.get(architecture, architecture)} (AUC {auc(fpr, tpr):.2f})")
    axes.plot([0, 1], [0, 1], linestyle=":", color="grey")
    axes.set(xlabel="False positive rate", ylabel="True positive rate", title=title, xlim=(0, 1), ylim=(0, 1.01))
    axes.legend(loc="lower right", fontsize=8)
    return save_png(figure, path)
