"""The paper's metrics, in numpy.

Segmentation (BUS literature, BUSIS benchmark, Xian et al.), with A_m the
predicted and A_g the ground-truth lesion:

    TPR = |Am ∩ Ag| / |Ag|
    FPR = |Am ∪ Ag − Ag| / |Ag|            (can exceed 1)
    AER = (|Am ∪ Ag| − |Am ∩ Ag|) / |Ag|    (= FPR + 1 − TPR; can exceed 1)
    DSC = 2 |Am ∩ Ag| / (|Am| + |Ag|)
    mIoU = mean of background IoU and lesion IoU (the paper's mIoU exceeds its
           DSC in every row, which only the two-class mean does)

Values are averaged per image. TPR, FPR and AER are undefined for an image
without a lesion; such images are left out of those three and counted.

Classification: the paper's Table 2 takes BENIGN as the positive class (its
BUSI row reproduces only that way); the clinical convention takes MALIGNANT
as positive. :func:`classification_metrics` computes either.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from . import BENIGN, CLASS_NAMES, MALIGNANT

SEGMENTATION_KEYS = ("TPR", "FPR", "mIoU", "DSC", "AER")
CLASSIFICATION_KEYS = ("TPR", "FPR", "ACC", "PRE", "F1")


def segmentation_counts(pred: np.ndarray, truth: np.ndarray) -> tuple[int, int, int, int]:
    """(intersection, |pred|, |truth|, pixels) of two bool masks."""
    pred, truth = np.asarray(pred, bool), np.asarray(truth, bool)
    if pred.shape != truth.shape:
        raise ValueError(f"prediction {pred.shape} and ground truth {truth.shape} differ in shape")
    return int(np.count_nonzero(pred & truth)), int(np.count_nonzero(pred)), int(np.count_nonzero(truth)), pred.size


def segmentation_metrics_one(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Metrics of one image, as fractions (not percent); NaN where undefined (no lesion)."""
    inter, n_pred, n_truth, total = segmentation_counts(pred, truth)
    union = n_pred + n_truth - inter
    background_inter = total - union
    background_union = total - inter
    iou_lesion = inter / union if union else 1.0
    iou_background = background_inter / background_union if background_union else 1.0
    if n_truth:
        tpr, fpr = inter / n_truth, (union - n_truth) / n_truth
        aer = (union - inter) / n_truth
    else:
        tpr = fpr = aer = float("nan")
    dsc = 2 * inter / (n_pred + n_truth) if (n_pred + n_truth) else 1.0
    return {"TPR": tpr, "FPR": fpr, "mIoU": (iou_lesion + iou_background) / 2, "DSC": dsc, "AER": aer}


def mean_segmentation_metrics(per_image: list[dict[str, float]]) -> dict[str, float]:
    """Per-image average of each metric (NaNs, i.e. images without lesions, left out of TPR/FPR/AER)."""
    if not per_image:
        raise ValueError("no images to average")
    result = {}
    for key in SEGMENTATION_KEYS:
        values = np.array([m[key] for m in per_image], dtype=np.float64)
        result[key] = float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")
    result["images"] = float(len(per_image))
    result["images_without_lesion"] = float(sum(np.isnan(m["TPR"]) for m in per_image))
    return result


@dataclass(frozen=True)
class ConfusionCounts:
    tp: int
    fn: int
    fp: int
    tn: int

    @classmethod
    def of(cls, labels: np.ndarray, predictions: np.ndarray, positive: int) -> ConfusionCounts:
        labels, predictions = np.asarray(labels), np.asarray(predictions)
        pos, pred_pos = labels == positive, predictions == positive
        return cls(tp=int(np.sum(pos & pred_pos)), fn=int(np.sum(pos & ~pred_pos)),
                   fp=int(np.sum(~pos & pred_pos)), tn=int(np.sum(~pos & ~pred_pos)))


def _ratio(num: float, den: float) -> float:
    return num / den if den else float("nan")


def classification_metrics(labels: np.ndarray, predictions: np.ndarray, positive: int = BENIGN) -> dict[str, float]:
    """TPR, FPR, ACC, PRE, F1 (fractions) with class ``positive`` as the positive class."""
    c = ConfusionCounts.of(labels, predictions, positive)
    tpr, fpr = _ratio(c.tp, c.tp + c.fn), _ratio(c.fp, c.fp + c.tn)
    pre = _ratio(c.tp, c.tp + c.fp)
    f1 = _ratio(2 * pre * tpr, pre + tpr) if np.isfinite(pre) and np.isfinite(tpr) else float("nan")
    acc = _ratio(c.tp + c.tn, c.tp + c.tn + c.fp + c.fn)
    return {"TPR": tpr, "FPR": fpr, "ACC": acc, "PRE": pre, "F1": f1, **{k: float(v) for k, v in asdict(c).items()}}


def clinical_metrics(labels: np.ndarray, predictions: np.ndarray) -> dict[str, float]:
    """Malignant as positive: sensitivity, specificity, PPV, NPV, ACC."""
    c = ConfusionCounts.of(labels, predictions, MALIGNANT)
    return {
        "sensitivity": _ratio(c.tp, c.tp + c.fn),
        "specificity": _ratio(c.tn, c.tn + c.fp),
        "PPV": _ratio(c.tp, c.tp + c.fp),
        "NPV": _ratio(c.tn, c.tn + c.fn),
        "ACC": _ratio(c.tp + c.tn, c.tp + c.tn + c.fp + c.fn),
    }


def roc_curve(labels: np.ndarray, scores: np.ndarray,
              positive: int = BENIGN) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(FPR, TPR, thresholds) for ``scores`` = the predicted probability of class ``positive``.

    Tied scores move the curve diagonally, as they should.
    """
    labels = np.asarray(labels) == positive
    scores = np.asarray(scores, dtype=np.float64)
    if labels.all() or not labels.any():
        raise ValueError("ROC needs both classes among the labels; got only "
                         f"{CLASS_NAMES[positive] if labels.all() else 'the other class'}")
    order = np.argsort(-scores, kind="mergesort")
    scores, labels = scores[order], labels[order]
    last_of_run = np.r_[np.flatnonzero(np.diff(scores)), scores.size - 1]
    tps = np.cumsum(labels)[last_of_run]
    fps = (last_of_run + 1) - tps
    tpr = np.r_[0.0, tps / labels.sum()]
    fpr = np.r_[0.0, fps / (~labels).sum()]
    return fpr, tpr, np.r_[np.inf, scores[last_of_run]]


def auc(fpr: np.ndarray, tpr: np.ndarray) -> float:
    """Area under a ROC curve by the trapezoid rule."""
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))


def class_auc(labels: np.ndarray, class_probabilities: np.ndarray) -> float:
    """The AUC of (N, 2) class probabilities against ``labels`` (both classes present), the one scorer of AUC.

    Benign is the positive class, as in the paper's Table 2; with probabilities that sum to one the ROC of the
    malignant class is its mirror image and has the same area.
    """
    fpr, tpr, _ = roc_curve(labels, np.asarray(class_probabilities)[:, BENIGN], positive=BENIGN)
    return auc(fpr, tpr)
