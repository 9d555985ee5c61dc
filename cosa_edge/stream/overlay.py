"""Drawing results onto frames: tumour contour, margin band, label with probability, frame rate."""

from __future__ import annotations

import cv2
import numpy as np

from ..kernels.reference import region_maps_full
from .postprocess import FrameResult, Roi

COLOURS = {"benign": (80, 200, 80), "malignant": (60, 60, 230), "": (200, 200, 200)}  # BGR
MARGIN_TINT = (0, 200, 255)


def draw_overlay(image: np.ndarray, result: FrameResult, roi: Roi, fps: float | None = None) -> np.ndarray:
    """A BGR copy of the frame with the result drawn on it (the frame keeps its size)."""
    canvas = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) if image.ndim == 2 else image.copy()
    x, y, w, h = roi
    colour = COLOURS.get(result.predicted, COLOURS[""])
    if result.lesion_area_px:
        # The margin band of the COSA module, at the ROI's resolution, as a translucent tint.
        margin = region_maps_full(result.mask)[2].astype(bool)
        patch = canvas[y:y + h, x:x + w]
        tint = np.empty_like(patch)
        tint[:] = MARGIN_TINT
        patch[margin] = cv2.addWeighted(patch, 0.6, tint, 0.4, 0)[margin]
        contours, _ = cv2.findContours(result.mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(patch, contours, -1, colour, 2, lineType=cv2.LINE_AA)
    probs = result.smoothed or result.probabilities
    if result.predicted:
        label = f"{result.predicted} {max(probs):.2f}"
        cv2.putText(canvas, label, (x + 8, y + 24), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(canvas, label, (x + 8, y + 24), cv2.FONT_HERSHEY_SIMPLEX, 0.7, colour, 1, cv2.LINE_AA)
    if fps is not None:
        text = f"{fps:.1f} fps"
        cv2.putText(canvas, text, (x + 8, y + h - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    if (x, y) != (0, 0) or (w, h) != canvas.shape[1::-1]:
        cv2.rectangle(canvas, (x, y), (x + w - 1, y + h - 1), (120, 120, 120), 1)
    return canvas
