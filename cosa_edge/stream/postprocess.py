"""From engine outputs to what a user reads: masks in frame coordinates, areas, boxes, smoothed probabilities."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from .. import CLASS_NAMES, MALIGNANT
from ..evaluation.masks import probability_at_size
from ..measure import LesionSize, measure_lesion
from ..presence import DEFAULT_MIN_LESION_SHARE, lesion_present

Roi = tuple[int, int, int, int]  # x, y, w, h


LESION, NO_LESION_STATUS, REJECTED = "lesion", "no_lesion", "rejected"
NO_SIZE = LesionSize(area_mm2=None, long_axis_mm=None, short_axis_mm=None, long_axis_px=None)
#: The reason of a rejection after inference (the others are the quality gate's, stream/quality.py).
OUT_OF_DISTRIBUTION = "out_of_distribution"
#: Why a lesion gets no class: its mask reaches the side of the region of interest, so part of it (and of the
#: margin COSA classifies from) lies out of view. Training lesions lie wholly in view (all but 12 of BUSI's
#: 647 clear the image's sides), and a verdict on a lesion's sliver would claim more than the model knows.
PARTLY_OUT_OF_VIEW = "lesion_partly_out_of_view"


@dataclass
class FrameResult:
    index: int
    timestamp: float
    status: str  # "lesion"; "no_lesion": no class is given (the classifier knows only lesions); "rejected"
    probabilities: list[float]
    smoothed: list[float] | None
    predicted: str  # "" where no class is given
    lesion_area_px: int
    lesion_share_of_roi: float
    bbox: list[int] | None  # x, y, w, h in frame pixels
    latency_ms: float
    mask: np.ndarray = field(repr=False, default_factory=lambda: np.zeros((0, 0), bool))  # ROI-sized, not serialised
    # Why there is no verdict: a rejected frame's (stream/quality.py REASONS, OUT_OF_DISTRIBUTION), or a
    # lesion's that is only partly in view (PARTLY_OUT_OF_VIEW).
    reason: str | None = None
    roi: Roi | None = None  # the region analysed, x, y, w, h in source pixels
    instance: int | None = None  # a DICOM source's Instance Number
    spacing_mm: tuple[float, float] | None = None  # (dy, dx) of one source pixel; None: uncalibrated
    size: LesionSize | None = None  # the lesion's size, where a lesion is present

    @property
    def malignancy_score(self) -> float | None:
        """The (smoothed, where smoothing is on) probability of malignancy; None without a lesion or a classifier."""
        probs = self.smoothed or self.probabilities
        if self.status != LESION or not self.predicted or not probs or not np.isfinite(probs[MALIGNANT]):
            return None
        return float(probs[MALIGNANT])

    def record(self) -> dict[str, Any]:
        record: dict[str, Any] = {"index": self.index, "timestamp": round(self.timestamp, 4), "status": self.status}
        if self.instance is not None:
            record["instance"] = self.instance
        if self.roi is not None:
            record["roi"] = list(self.roi)
        record["pixel_spacing_mm"] = [round(v, 6) for v in self.spacing_mm] if self.spacing_mm else None
        if self.status == REJECTED:  # nothing about a lesion either: the model was not made for this frame
            return {**record, "reason": self.reason, "latency_ms": round(self.latency_ms, 3)}
        if self.status == LESION and self.predicted:
            record.update({
                "malignancy_score": round(self.malignancy_score, 6),
                "class_probabilities": dict(zip(CLASS_NAMES, [round(p, 6) for p in self.probabilities])),
                "smoothed_probabilities": dict(zip(CLASS_NAMES, [round(p, 6) for p in self.smoothed]))
                if self.smoothed else None,
                "predicted_class": self.predicted})
        elif self.reason:
            record["reason"] = self.reason
        record.update({"lesion_area_px": self.lesion_area_px, "lesion_share_of_roi": round(self.lesion_share_of_roi, 6),
                       "bbox": self.bbox})
        # Sizes in mm: null where uncalibrated or without a lesion, never a guess.
        record.update((self.size or NO_SIZE).record())
        record["latency_ms"] = round(self.latency_ms, 3)
        return record


class ProbabilitySmoother:
    """Exponential moving average of the class probabilities over frames: p_t = a * x_t + (1 - a) * p_{t-1}.

    ``alpha`` = 1 turns smoothing off; smaller values steady the label on a moving probe at the cost of
    reacting ``1/alpha`` frames later.
    """

    def __init__(self, alpha: float) -> None:
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"smoothing factor {alpha} must lie in (0, 1]")
        self.alpha = alpha
        self.state: np.ndarray | None = None

    def __call__(self, probabilities: np.ndarray) -> np.ndarray:
        self.state = probabilities if self.state is None else self.alpha * probabilities + (1 - self.alpha) * self.state
        return self.state

    def reset(self) -> None:
        """Forget the past: a frame without a lesion ends the run of frames a verdict was smoothed over."""
        self.state = None


def frame_roi(shape: tuple[int, ...], roi: Roi | None) -> Roi:
    height, width = shape[:2]
    if roi is None:
        return (0, 0, width, height)
    x, y, w, h = roi
    x, y = max(x, 0), max(y, 0)
    w, h = min(w, width - x), min(h, height - y)
    if w <= 0 or h <= 0:
        raise ValueError(f"region of interest {roi} lies outside the {width}x{height} frame")
    return (x, y, w, h)


def probability_in_roi(lesion_probability: np.ndarray, roi: Roi) -> np.ndarray:
    """(S, S) probability -> the ROI's size, bilinear; its mask is ``> 0.5``."""
    _, _, w, h = roi
    return probability_at_size(lesion_probability, (h, w))


def summarise(index: int, timestamp: float, lesion_probability: np.ndarray | None,
              class_probabilities: np.ndarray | None,
              roi: Roi, latency_ms: float, smoother: ProbabilitySmoother | None = None,
              min_lesion_share: float = DEFAULT_MIN_LESION_SHARE, *, rejected: str | None = None,
              ood_score: float | None = None, ood_threshold: float | None = None,
              spacing_mm: tuple[float, float] | None = None, instance: int | None = None) -> FrameResult:
    """One frame's result. A class is given only where the mask holds a lesion of at least ``min_lesion_share``
    of the ROI; otherwise the status is "no_lesion" and the smoother (if any) starts afresh. A frame the quality
    gate ``rejected``, or whose ``ood_score`` exceeds ``ood_threshold``, is "rejected" with that reason.

    The result names the ROI and gives a present lesion's size in mm at ``spacing_mm`` (dy, dx of one source
    pixel; None where uncalibrated, and then the sizes are null)."""
    x, y, w, h = roi
    if rejected is None and ood_score is not None and ood_threshold is not None and not ood_score <= ood_threshold:
        rejected = OUT_OF_DISTRIBUTION  # (a NaN score is rejected too)
    if rejected is not None:
        if smoother is not None:
            smoother.reset()
        return FrameResult(index=index, timestamp=timestamp, status=REJECTED, probabilities=[], smoothed=None,
                           predicted="", lesion_area_px=0, lesion_share_of_roi=0.0, bbox=None,
                           latency_ms=latency_ms, mask=np.zeros((h, w), bool), reason=rejected,
                           roi=roi, instance=instance, spacing_mm=spacing_mm)
    in_roi = probability_in_roi(lesion_probability, roi) if lesion_probability is not None else np.zeros((h, w))
    mask = in_roi > 0.5
    area = int(np.count_nonzero(mask))
    share = area / float(w * h)
    # A model without a segmentation head cannot say whether there is a lesion; it is taken at its word.
    present = lesion_probability is None or lesion_present(share, min_lesion_share)
    bbox = None
    if area and present:
        bx, by, bw, bh = cv2.boundingRect(mask.astype(np.uint8))
        bbox = [int(bx + x), int(by + y), int(bw), int(bh)]
    # A class needs the whole lesion in view: one that reaches the side of the ROI gets none, and the smoother
    # starts afresh (the lesion's next verdict is not averaged with what came before it left the view).
    cut = present and area > 0 and (touches_border(mask) or touches_border(lesion_extent(in_roi, mask)))
    probs = class_probabilities if class_probabilities is not None else np.full(len(CLASS_NAMES), np.nan)
    smoothed = None
    if smoother is not None:
        if present and not cut and class_probabilities is not None:
            smoothed = smoother(class_probabilities)
        else:
            smoother.reset()
    decisive = smoothed if smoothed is not None else probs
    predicted = CLASS_NAMES[int(np.nanargmax(decisive))] if present and not cut and np.isfinite(decisive).any() else ""
    return FrameResult(index=index, timestamp=timestamp, status=LESION if present else NO_LESION_STATUS,
                       probabilities=[float(p) for p in probs],
                       smoothed=[float(p) for p in smoothed] if smoothed is not None else None,
                       predicted=predicted, lesion_area_px=area, lesion_share_of_roi=share, bbox=bbox,
                       latency_ms=latency_ms, mask=mask if present else np.zeros_like(mask),
                       reason=PARTLY_OUT_OF_VIEW if cut else None, roi=roi, instance=instance, spacing_mm=spacing_mm,
                       size=measure_lesion(mask, spacing_mm) if present else None)


#: Where a lesion's probability falls below the mask's 0.5 but stays above this, still joined to the mask, it is
#: still the lesion's extent for PARTLY_OUT_OF_VIEW. At the side of the view the demo's models' masks stopped short
#: of a lesion that ran on out of view, where the probability was 0.36-0.47, while along the sides of lesion-free
#: frames it stayed at 0.15-0.17 (docs/deployment.md, "Partly out of view").
EXTENT_THRESHOLD = 0.3


def lesion_extent(probability: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The mask grown into the connected pixels whose probability (at the mask's size) exceeds
    :data:`EXTENT_THRESHOLD`: hysteresis, as an edge detector joins weak edges to strong ones."""
    low = probability > EXTENT_THRESHOLD
    count, labels = cv2.connectedComponents((low | mask).astype(np.uint8), connectivity=8)
    joined = np.unique(labels[mask])
    return np.isin(labels, joined[joined > 0]) if count > 1 else mask


def touches_border(mask: np.ndarray) -> bool:
    """Whether the bool mask reaches any side of its array (the region of interest)."""
    return bool(mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any())
