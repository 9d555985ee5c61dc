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
    if result.lesion_area_px and result.bbox is not None:
        # Work on the lesion's bounding box plus the band's reach only: the rest of the frame is untouched,
        # which keeps the overlay's cost proportional to the lesion, not to the frame.
        bx, by, bw, bh = result.bbox
        pad = 4
        x0, y0 = max(bx - x - pad, 0), max(by - y - pad, 0)
        x1, y1 = min(bx - x + bw + pad, w), min(by - y + bh + pad, h)
        mask = result.mask[y0:y1, x0:x1]
        patch = canvas[y + y0:y + y1, x + x0:x + x1]
        # The margin band of the COSA module as a translucent tint. The crop is not the whole image, so the
        # band is computed on it with the image's own border rule: where the crop meets the ROI's edge the
        # lesion may continue, and replicate padding gives no false band there either.
        margin = region_maps_full(mask)[2].astype(bool)
        blended = (patch[margin] * 0.6 + np.array(MARGIN_TINT, np.float32) * 0.4).astype(np.uint8)
        patch[margin] = blended
        contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
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
