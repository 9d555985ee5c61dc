"""Paired comparisons of two models on the same images: are their differences real, or the folds' noise?

Cross-validation tests every image exactly once, so two models run on the same folds give one pair of
results per image. Three tests, one per metric kind:

- per-image Dice: Wilcoxon's signed-rank test on the paired differences (scipy.stats.wilcoxon);
- accuracy: McNemar's exact test on the images that exactly one of the two classifies correctly
  (a two-sided binomial test of the discordant pairs, scipy.stats.binomtest);
- AUC: DeLong, DeLong and Clarke-Pearson's test for two correlated ROC curves (1988), in Sun and Xu's
  midrank formulation (2014): the AUCs' covariance from each image's structural components.

Torch-free; numpy and scipy only.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..errors import CosaEdgeError

#: Differences with p below this are called real in the reports; one fixed level, stated beside each table.
ALPHA = 0.05


@dataclass(frozen=True)
class PairedTest:
    metric: str
    test: str
    n: int  # pairs the test used
    value_a: float
    value_b: float
    difference: float  # a - b
    statistic: float
    p_value: float

    @property
    def real(self) -> bool:
        return self.p_value < ALPHA

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "real_at_alpha": self.real, "alpha": ALPHA}


def wilcoxon_dice(dice_a: np.ndarray, dice_b: np.ndarray) -> PairedTest:
    """Wilcoxon signed-rank on per-image Dice; identical results give p = 1 (nothing to tell apart)."""
    from scipy import stats

    a, b = np.asarray(dice_a, float), np.asarray(dice_b, float)
    if a.shape != b.shape or a.size == 0:
        raise CosaEdgeError("paired Dice needs the same images, at least one, for both models")
    differences = a - b
    if not np.any(differences):
        statistic, p = 0.0, 1.0
    else:
        result = stats.wilcoxon(a, b, zero_method="wilcox", alternative="two-sided")
        statistic, p = float(result.statistic), float(result.pvalue)
    return PairedTest("DSC (per image)", "Wilcoxon signed-rank", int(a.size), float(a.mean()), float(b.mean()),
                      float(differences.mean()), statistic, p)


def mcnemar_accuracy(correct_a: np.ndarray, correct_b: np.ndarray) -> PairedTest:
    """McNemar's exact test: only the images the two models disagree on carry information."""
    from scipy import stats

    a, b = np.asarray(correct_a, bool), np.asarray(correct_b, bool)
    if a.shape != b.shape or a.size == 0:
        raise CosaEdgeError("paired accuracy needs the same images, at least one, for both models")
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    discordant = only_a + only_b
    p = 1.0 if discordant == 0 else float(stats.binomtest(only_a, discordant, 0.5, alternative="two-sided").pvalue)
    return PairedTest("ACC", "McNemar exact", int(a.size), float(a.mean()), float(b.mean()),
                      float(a.mean() - b.mean()), float(min(only_a, only_b)), p)


def _midranks(values: np.ndarray) -> np.ndarray:
    """Ranks from 1, ties sharing the mean of the ranks they span."""
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    ranks = np.empty(len(values), float)
    start = 0
    while start < len(values):
        end = start
        while end + 1 < len(values) and sorted_values[end + 1] == sorted_values[start]:
            end += 1
        ranks[order[start:end + 1]] = 0.5 * (start + end) + 1.0
        start = end + 1
    return ranks


def delong_components(positive_scores: np.ndarray, negative_scores: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """AUC and its structural components: V10 for each positive (the share of negatives it outranks, ties
    half) and V01 for each negative (the share of positives that outrank it)."""
    m, n = len(positive_scores), len(negative_scores)
    both = np.concatenate([positive_scores, negative_scores])
    ranks_all = _midranks(both)
    ranks_positive = _midranks(positive_scores)
    ranks_negative = _midranks(negative_scores)
    v10 = (ranks_all[:m] - ranks_positive) / n
    v01 = 1.0 - (ranks_all[m:] - ranks_negative) / m
    return float(v10.mean()), v10, v01


def delong_auc(labels: np.ndarray, scores_a: np.ndarray, scores_b: np.ndarray, positive: int = 1) -> PairedTest:
    """DeLong's test of AUC(a) = AUC(b) for two models scoring the same labelled images."""
    from scipy import stats

    labels = np.asarray(labels)
    a, b = np.asarray(scores_a, float), np.asarray(scores_b, float)
    if not (labels.shape == a.shape == b.shape):
        raise CosaEdgeError("paired AUC needs one label and two scores per image")
    is_positive = labels == positive
    m, n = int(is_positive.sum()), int((~is_positive).sum())
    if m < 2 or n < 2:
        raise CosaEdgeError(f"paired AUC needs at least two images of each class (got {m} and {n})")
    auc_a, v10_a, v01_a = delong_components(a[is_positive], a[~is_positive])
    auc_b, v10_b, v01_b = delong_components(b[is_positive], b[~is_positive])
    s10 = np.cov(np.vstack([v10_a, v10_b]))  # 2 x 2 covariance over positives
    s01 = np.cov(np.vstack([v01_a, v01_b]))  # over negatives
    covariance = s10 / m + s01 / n
    variance = covariance[0, 0] + covariance[1, 1] - 2 * covariance[0, 1]
    difference = auc_a - auc_b
    if variance <= 1e-15:  # the same ranking: no difference to test
        z, p = 0.0, 1.0 if abs(difference) < 1e-12 else 0.0
    else:
        z = difference / math.sqrt(variance)
        p = float(2 * stats.norm.sf(abs(z)))
    return PairedTest("AUC", "DeLong", m + n, auc_a, auc_b, difference, float(z), p)
