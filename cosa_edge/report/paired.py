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


#: The paper's central comparison: MTL-COSA against the multi-task models without COSA.
REFERENCE = "mtl_cosa"
COMPARED = ("mtl", "mtl_sa")


def compare_records(records_a: list[dict[str, Any]], records_b: list[dict[str, Any]],
                    benign: int = 0, no_lesion: int = -1) -> list[PairedTest]:
    """The three paired tests on two models' prediction records (``name``, ``label``, ``probabilities``,
    ``dice`` where the image has a lesion), matched by image name; a test without data is left out."""
    by_name_b = {r["name"]: r for r in records_b}
    pairs = [(r, by_name_b[r["name"]]) for r in records_a if r["name"] in by_name_b]
    tests: list[PairedTest] = []
    dice = [(a["dice"], b["dice"]) for a, b in pairs if "dice" in a and "dice" in b
            and not (math.isnan(a["dice"]) or math.isnan(b["dice"]))]
    if dice:
        tests.append(wilcoxon_dice(np.array([d[0] for d in dice]), np.array([d[1] for d in dice])))
    classified = [(a, b) for a, b in pairs if a["label"] != no_lesion and "probabilities" in a and "probabilities" in b]
    if classified:
        labels = np.array([a["label"] for a, _ in classified])
        correct_a = np.array([int(np.argmax(a["probabilities"])) == a["label"] for a, _ in classified])
        correct_b = np.array([int(np.argmax(b["probabilities"])) == b["label"] for _, b in classified])
        tests.append(mcnemar_accuracy(correct_a, correct_b))
        if len(set(labels.tolist())) == 2:
            tests.append(delong_auc(labels, np.array([a["probabilities"][benign] for a, _ in classified]),
                                    np.array([b["probabilities"][benign] for _, b in classified]), positive=benign))
    return tests


def paired_markdown(comparisons: dict[str, list[PairedTest]], reference: str, title: str | None = None) -> str:
    lines = [f"## {title or f'Paired comparisons: {reference} against the other multi-task models'}", "",
             f"Every image of every test fold once, both models on the same images. Dice: Wilcoxon signed-rank on "
             f"per-image DSC; accuracy: McNemar's exact test; AUC: DeLong's test. 'real' means p < {ALPHA} "
             "(two-sided, no correction for the several tests).", "",
             f"| {reference} against | metric | images | {reference} | other | difference | test | p | real? |",
             "|---|---|---|---|---|---|---|---|---|"]
    for other, tests in comparisons.items():
        for t in tests:
            # AUC as a fraction to 3 places; Dice and accuracy in percent to 1.
            scale, digits = (1.0, 3) if t.metric == "AUC" else (100.0, 1)
            lines.append(f"| {other} | {t.metric} | {t.n} | {scale * t.value_a:.{digits}f} | "
                         f"{scale * t.value_b:.{digits}f} | {scale * t.difference:+.{digits}f} | {t.test} | "
                         f"{t.p_value:.3g} | {'yes' if t.real else 'no'} |")
    return "\n".join(lines) + "\n"
