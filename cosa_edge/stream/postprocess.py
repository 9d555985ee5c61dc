"""From engine outputs to what a user reads: masks in frame coordinates, areas, boxes, smoothed probabilities."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from .. import CLASS_NAMES

Roi = tuple[int, int, int, int]  # x, y, w, h


@dataclass
class FrameResult:
    index: int
    timestamp: float
    probabilities: list[float]
    smoothed: list[float] | None
    predicted: str
    lesion_area_px: int
    lesion_share_of_roi: float
    bbox: list[int] | None  # x, y, w, h in frame pixels
    latency_ms: float
    mask: np.ndarray = field(repr=False, default_factory=lambda: np.zeros((0, 0), bool))  # ROI-sized, not serialised

    def record(self) -> dict[str, Any]:
        return {"index": self.index, "timestamp": round(self.timestamp, 4),
                "class_probabilities": dict(zip(CLASS_NAMES, [round(p, 6) for p in self.probabilities])),
                "smoothed_probabilities": dict(zip(CLASS_NAMES, [round(p, 6) for p in self.smoothed])) if self.smoothed else None,
                "predicted_class": self.predicted, "lesion_area_px": self.lesion_area_px,
                "lesion_share_of_roi": round(self.lesion_share_of_roi, 6), "bbox": self.bbox,
                "latency_ms": round(self.latency_ms, 3)}


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


def lesion_mask_in_roi(lesion_probability: np.ndarray, roi: Roi) -> np.ndarray:
    """(S, S) probability -> bool mask at the ROI's size (bilinear on the probability, then > 0.5)."""
    _, _, w, h = roi
    return cv2.resize(lesion_probability.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR) > 0.5


def summarise(index: int, timestamp: float, lesion_probability: np.ndarray | None, class_probabilities: np.ndarray | None,
              roi: Roi, latency_ms: float, smoothed: np.ndarray | None = None) -> FrameResult:
    x, y, w, h = roi
    mask = lesion_mask_in_roi(lesion_probability, roi) if lesion_probability is not None else np.zeros((h, w), bool)
    area = int(np.count_nonzero(mask))
    bbox = None
    if area:
        bx, by, bw, bh = cv2.boundingRect(mask.astype(np.uint8))
        bbox = [int(bx + x), int(by + y), int(bw), int(bh)]
    probs = class_probabilities if class_probabilities is not None else np.full(len(CLASS_NAMES), np.nan)
    decisive = smoothed if smoothed is not None else probs
    return FrameResult(index=index, timestamp=timestamp, probabilities=[float(p) for p in probs],
                       smoothed=[float(p) for p in smoothed] if smoothed is not None else None,
                       predicted=CLASS_NAMES[int(np.nanargmax(decisive))] if np.isfinite(decisive).any() else "",
                       lesion_area_px=area, lesion_share_of_roi=area / float(w * h), bbox=bbox,
                       latency_ms=latency_ms, mask=mask)
