"""Lesion size in millimetres from a segmentation mask: area, long axis and short axis.

The axes follow the RECIST / BI-RADS caliper convention: the long axis is the
lesion's longest diameter, the short axis its longest chord perpendicular to the
long axis. Everything is computed in physical (mm) coordinates, so a scanner whose
pixels are taller than wide (anisotropic spacing) is measured right, and every
pixel counts whole: as the ellipse inscribed in its rectangle (a disc one pixel
across for square pixels), so a bar w pixels long measures w pixels, not the w - 1
between its end pixels' centres, whatever its orientation. numpy and OpenCV only.

Pixel coordinates: pixel (column c, row r) has its centre at (x, y) = (c, r), so a
caliper's end half a pixel beyond an end pixel's centre lies on that pixel's edge.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from .errors import CosaEdgeError

Point = tuple[float, float]

# The 4-neighbourhood: a pixel with a background 4-neighbour has an edge on the lesion's outline.
_CROSS = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
# Perpendicular chords are sampled this many times per (shorter) pixel side along the long axis: the chord
# length changes by at most a fraction of a pixel between samples, far inside the one-pixel accuracy.
_CHORDS_PER_PIXEL = 4


@dataclass(frozen=True)
class LesionSize:
    """The size of one lesion; every mm field is None when uncalibrated or when there is no lesion."""

    area_mm2: float | None
    long_axis_mm: float | None  # the longest diameter of the lesion
    short_axis_mm: float | None  # the longest chord perpendicular to the long axis
    # The long axis's two end points (x, y) in mask pixels, for drawing the caliper on an overlay; given
    # without calibration too (then measured on square pixels), None only without a lesion.
    long_axis_px: tuple[Point, Point] | None

    def record(self) -> dict[str, float | None]:
        """The JSON fields, rounded to 0.01 mm (finer than any scanner resolves); None stays None."""
        return {
            "lesion_area_mm2": _round(self.area_mm2),
            "lesion_long_axis_mm": _round(self.long_axis_mm),
            "lesion_short_axis_mm": _round(self.short_axis_mm),
        }


_NO_LESION = LesionSize(area_mm2=None, long_axis_mm=None, short_axis_mm=None, long_axis_px=None)


def measure_lesion(mask: np.ndarray, spacing_mm: tuple[float, float] | None) -> LesionSize:
    """Area, long and short axis of the largest connected lesion in ``mask`` (bool (H, W), source resolution).

    Only the largest 8-connected component is measured: a radiologist measures one
    lesion, and specks of false positive elsewhere must not stretch its diameter.

    ``spacing_mm`` is (dy, dx), the height and width of one pixel in mm. Without it
    (None) every mm field is None rather than a guess; the long axis's end points are
    still given (found on square pixels) so an overlay can draw the caliper.

    * area: the component's pixel count x dy x dx (holes inside it are not lesion);
    * long axis: the largest distance across the component, every pixel counted as
      the ellipse inscribed in its rectangle (see :func:`_long_axis`);
    * short axis: the longest chord perpendicular to the long axis, from the
      lesion's first to its last point on that line (what a caliper spans; a gap
      between lobes on the way is included), pixels counted the same way.
    """
    dy, dx = _pixel_size(spacing_mm)
    found = _largest_component(mask)
    if found is None:
        return _NO_LESION
    component, origin, area_px = found
    centres = _outline_pixels(component) + origin  # (N, 2) pixel centres (x, y) in mask coordinates
    start, end = _long_axis(centres, dx, dy)
    start_px = (float(start[0] / dx), float(start[1] / dy))
    end_px = (float(end[0] / dx), float(end[1] / dy))
    ends = (start_px, end_px) if start_px <= end_px else (end_px, start_px)  # left end first, for a stable record
    if spacing_mm is None:
        return LesionSize(area_mm2=None, long_axis_mm=None, short_axis_mm=None, long_axis_px=ends)
    return LesionSize(
        area_mm2=float(area_px * dy * dx),
        long_axis_mm=float(np.hypot(*(end - start))),
        short_axis_mm=_perpendicular_chord(centres, start, end, dx, dy),
        long_axis_px=ends,
    )


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def _pixel_size(spacing_mm: tuple[float, float] | None) -> tuple[float, float]:
    """(dy, dx) in mm, checked; square unit pixels when uncalibrated (used only for the end points then)."""
    if spacing_mm is None:
        return 1.0, 1.0
    try:
        dy, dx = (float(value) for value in spacing_mm)
    except (TypeError, ValueError):
        raise CosaEdgeError(f"pixel spacing {spacing_mm!r} is not two numbers; give it as (dy, dx) in mm") from None
    if not (math.isfinite(dy) and math.isfinite(dx) and dy > 0 and dx > 0):
        raise CosaEdgeError(f"pixel spacing {spacing_mm!r} must be two positive sizes in mm (dy, dx); "
                            "give the scanner's pixel spacing or leave it out to skip measurements")
    return dy, dx


def _largest_component(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, int] | None:
    """The largest 8-connected component, cropped to its bounding box: (bool crop, its (x, y) origin, pixel count).

    Works on the mask's bounding box only, so a small lesion in a large frame costs little.
    """
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"a lesion mask must be 2-D (H, W), not of shape {mask.shape}")
    binary = np.ascontiguousarray(mask).view(np.uint8) if mask.dtype == bool else (mask != 0).view(np.uint8)
    x, y, w, h = cv2.boundingRect(binary)
    if w == 0 or h == 0:
        return None
    crop = np.ascontiguousarray(binary[y:y + h, x:x + w])
    _, labels, stats, _ = cv2.connectedComponentsWithStats(crop, connectivity=8)
    biggest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))  # label 0 is the background; ties: the first
    bx, by, bw, bh, area = (int(v) for v in stats[biggest])
    component = labels[by:by + bh, bx:bx + bw] == biggest
    return component, np.array([x + bx, y + by], dtype=np.float64), area


def _outline_pixels(component: np.ndarray) -> np.ndarray:
    """Centres (x, y) of the pixels with a background 4-neighbour, relative to the crop.

    Only these pixels have edges on the lesion's outline, so only they can be the ends of a
    diameter or a chord; interior pixels (most of a large lesion) are skipped.
    """
    padded = np.pad(component, 1).view(np.uint8)  # the pad makes pixels at the crop's side outline pixels
    interior = cv2.erode(padded, _CROSS).view(bool)
    rows, cols = np.nonzero(padded.view(bool) & ~interior)
    return np.stack([cols - 1, rows - 1], axis=1).astype(np.float64)


def _support(direction: np.ndarray, half_x: float, half_y: float) -> np.ndarray:
    """Half the extent, along unit ``direction`` (..., 2), of the ellipse inscribed in a pixel (half-sides hx, hy)."""
    return np.hypot(half_x * direction[..., 0], half_y * direction[..., 1])


def _long_axis(centres: np.ndarray, dx: float, dy: float) -> tuple[np.ndarray, np.ndarray]:
    """The lesion's longest diameter as two end points in mm.

    Each pixel counts as the ellipse inscribed in its rectangle (a disc of one pixel's
    diameter for square pixels): the diameter is the largest distance between two outline
    pixels' centres plus one pixel's extent along that line. A bar w pixels long so measures
    exactly w; pixel corners would stick out of an oblique staircase outline by up to
    0.7 px at each end, so an oblique lesion would measure longer than the same lesion
    upright. Exact for square pixels; with unequal sides the best direction is searched
    among the centres' hull chords only, which is off by less than the sides' difference.
    """
    half_x, half_y = dx / 2.0, dy / 2.0
    points = centres * np.array([dx, dy])
    hull = cv2.convexHull(points.astype(np.float32), returnPoints=False).ravel()
    vertices = points[hull]  # float64 again: the hull only picks which centres
    if len(vertices) < 2 or np.ptp(vertices, axis=0).max() == 0.0:  # a single pixel: its ellipse's major axis
        direction = np.array([1.0, 0.0]) if dx >= dy else np.array([0.0, 1.0])
        reach = float(_support(direction, half_x, half_y))
        return vertices[0] - reach * direction, vertices[0] + reach * direction
    # A pixelated outline's hull has few vertices (tens to a few hundred), so all pairs are cheap.
    gaps = vertices[None, :, :] - vertices[:, None, :]
    distance = np.hypot(gaps[..., 0], gaps[..., 1])
    apart = distance > 0
    direction = np.divide(gaps, distance[..., None], out=np.zeros_like(gaps), where=apart[..., None])
    length = np.where(apart, distance + 2.0 * _support(direction, half_x, half_y), 0.0)
    i, j = np.unravel_index(int(np.argmax(length)), length.shape)
    reach = float(_support(direction[i, j], half_x, half_y))
    return vertices[i] - reach * direction[i, j], vertices[j] + reach * direction[i, j]


def _perpendicular_chord(centres: np.ndarray, start: np.ndarray, end: np.ndarray, dx: float, dy: float) -> float:
    """The longest chord perpendicular to start->end (mm) through the outline pixels' inscribed ellipses.

    Lines perpendicular to the axis are sampled along it; on each, every pixel ellipse it
    crosses contributes the exact segment it cuts, and the chord runs from the lowest to the
    highest of them. Each pixel meets only the few lines within its reach, so the work is
    proportional to the outline's length, not to the lesion's area.
    """
    length = float(np.hypot(*(end - start)))
    axis = (end - start) / length
    normal = np.array([-axis[1], axis[0]])
    centres_mm = centres * np.array([dx, dy])
    u = centres_mm @ axis - float(start @ axis)  # position along the axis, from the start
    v = centres_mm @ normal
    half_x, half_y = dx / 2.0, dy / 2.0
    reach = float(_support(axis, half_x, half_y))  # half a pixel ellipse's extent along the axis

    step = min(dx, dy) / _CHORDS_PER_PIXEL
    count = max(1, math.ceil(length / step))
    first = np.clip(np.ceil((u - reach) / step - 0.5), 0, count - 1).astype(np.int64)
    last = np.clip(np.floor((u + reach) / step - 0.5), 0, count - 1).astype(np.int64)
    hits = np.maximum(last - first + 1, 0)
    pixel = np.repeat(np.arange(len(u)), hits)
    line = first[pixel] + np.arange(pixel.size) - np.repeat(np.cumsum(hits) - hits, hits)

    # The point at s along the axis and w along the normal from a pixel's centre is inside its ellipse
    # while (x/hx)^2 + (y/hy)^2 <= 1 with (x, y) = s*axis + w*normal: a quadratic a*w^2 + 2*b*s*w + c*s^2 <= 1,
    # whose discriminant simplifies to a - (s / (hx*hy))^2.
    s = (line + 0.5) * step - u[pixel]
    a = (normal[0] / half_x) ** 2 + (normal[1] / half_y) ** 2
    b = axis[0] * normal[0] / half_x**2 + axis[1] * normal[1] / half_y**2
    discriminant = a - (s / (half_x * half_y)) ** 2
    cut = discriminant >= 0.0
    root = np.sqrt(discriminant[cut])
    middle = v[pixel[cut]] - b * s[cut] / a
    line, low, high = line[cut], middle - root / a, middle + root / a

    lowest = np.full(count, np.inf)
    highest = np.full(count, -np.inf)
    np.minimum.at(lowest, line, low)
    np.maximum.at(highest, line, high)
    crossed = np.isfinite(lowest)
    return float(np.max(highest[crossed] - lowest[crossed]))
