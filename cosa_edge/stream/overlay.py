"""Drawing results onto frames: lesion contour, margin band, malignancy score or "no lesion", frame rate.

Colours carry no verdict: one neutral contour colour whatever the class (no green "benign", no
red "malignant"), the score as a number, and colours from the Okabe-Ito palette, which readers
with the common colour-vision deficiencies tell apart. Every annotated frame says what the
model is for (:data:`cosa_edge.contract.INTENDED_USE`).
"""

from __future__ import annotations

import cv2
import numpy as np

from ..contract import INTENDED_USE
from ..kernels.reference import region_maps_full
from .postprocess import NO_LESION_STATUS, REJECTED, FrameResult, Roi

# BGR, from the Okabe-Ito palette: sky blue for the lesion contour, orange for the margin band.
CONTOUR_COLOUR = (233, 180, 86)
MARGIN_TINT = (0, 159, 230)
TEXT_COLOUR = (255, 255, 255)


def frame_label(result: FrameResult) -> str:
    """What the frame says in words: a malignancy score only where there is a lesion."""
    if result.status == NO_LESION_STATUS:
        return "no lesion"
    if result.status == REJECTED:  # the short form of the reason fits a small frame; the JSONL has it too
        return f"no verdict: {(result.reason or 'rejected').replace('_', ' ')}"
    score = result.malignancy_score
    return "lesion" if score is None else f"lesion: malignancy score {score:.2f}"


def _text(canvas: np.ndarray, text: str, origin: tuple[int, int], scale: float) -> None:
    # A dark outline under light text stays readable on any grey level of the image.
    cv2.putText(canvas, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(canvas, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, TEXT_COLOUR, 1, cv2.LINE_AA)


def draw_overlay(image: np.ndarray, result: FrameResult, roi: Roi, fps: float | None = None) -> np.ndarray:
    """A BGR copy of the frame with the result drawn on it (the frame keeps its size)."""
    canvas = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) if image.ndim == 2 else image.copy()
    x, y, w, h = roi
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
        cv2.drawContours(patch, contours, -1, CONTOUR_COLOUR, 2, lineType=cv2.LINE_AA)
    _text(canvas, frame_label(result), (x + 8, y + 24), 0.6)
    footer = INTENDED_USE if fps is None else f"{fps:.1f} fps  {INTENDED_USE}"
    _text(canvas, footer, (x + 8, y + h - 10), 0.35)
    if (x, y) != (0, 0) or (w, h) != canvas.shape[1::-1]:
        cv2.rectangle(canvas, (x, y), (x + w - 1, y + h - 1), (120, 120, 120), 1)
    return canvas
