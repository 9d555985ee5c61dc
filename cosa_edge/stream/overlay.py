"""Drawing results onto frames: lesion contour, margin band, long-axis caliper in mm, malignancy score or "no lesion",
frame rate; what lies outside the region of interest blanked where asked.

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
from .postprocess import NO_LESION_STATUS, PARTLY_OUT_OF_VIEW, REJECTED, FrameResult, Roi

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
    if result.reason == PARTLY_OUT_OF_VIEW:
        return "lesion partly out of view: no verdict"
    score = result.malignancy_score
    return "lesion" if score is None else f"lesion: malignancy score {score:.2f}"


def _text(canvas: np.ndarray, text: str, origin: tuple[int, int], scale: float, max_width: int | None = None) -> None:
    """Light text on a dark outline (readable on any grey level), shrunk to fit ``max_width`` pixels: a verdict
    cut off at the frame's edge ("...no verd") would say less than it means."""
    if max_width is not None and max_width > 0:
        for _ in range(8):  # Hershey glyphs do not shrink in proportion at small scales: shrink until it fits
            width = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 3)[0][0]
            if width <= max_width:
                break
            scale *= 0.97 * max_width / width
    cv2.putText(canvas, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(canvas, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, TEXT_COLOUR, 1, cv2.LINE_AA)


def _blank(canvas: np.ndarray, roi: Roi) -> None:
    """Black out everything outside the region of interest, in place: a scanner burns the patient's name, ID
    and the date into its header bar, which must not travel with an annotated video."""
    x, y, w, h = roi
    canvas[:y] = 0
    canvas[y + h:] = 0
    canvas[y:y + h, :x] = 0
    canvas[y:y + h, x + w:] = 0


def draw_overlay(image: np.ndarray, result: FrameResult, roi: Roi, fps: float | None = None,
                 blank_outside: bool = False) -> np.ndarray:
    """A BGR copy of the frame with the result drawn on it (the frame keeps its size); ``blank_outside``
    blacks out what lies outside ``roi`` first."""
    canvas = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) if image.ndim == 2 else image.copy()
    x, y, w, h = roi
    if blank_outside:
        _blank(canvas, roi)
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
    size = result.size
    if size is not None and size.long_axis_px is not None:
        # The long axis as a caliper line (the mask is the ROI's, so its points are offset by the ROI's corner).
        (x0, y0), (x1, y1) = size.long_axis_px
        cv2.line(canvas, (int(round(x0)) + x, int(round(y0)) + y), (int(round(x1)) + x, int(round(y1)) + y),
                 TEXT_COLOUR, 1, lineType=cv2.LINE_AA)
    _text(canvas, frame_label(result), (x + 8, y + 24), 0.6, max_width=w - 16)
    if size is not None and size.long_axis_mm is not None:
        _text(canvas, f"long axis {size.long_axis_mm:.1f} mm", (x + 8, y + 44), 0.5, max_width=w - 16)
    footer = INTENDED_USE if fps is None else f"{fps:.1f} fps  {INTENDED_USE}"
    _text(canvas, footer, (x + 8, y + h - 10), 0.35, max_width=w - 16)
    if (x, y) != (0, 0) or (w, h) != canvas.shape[1::-1]:
        cv2.rectangle(canvas, (x, y), (x + w - 1, y + h - 1), (120, 120, 120), 1)
    return canvas
