"""Lesion sizes in mm: area, long axis (longest diameter), short axis (longest perpendicular chord).

Accuracy is checked against shapes whose size is known by geometry, to within one pixel's length
(the longer side of a pixel where the spacing is anisotropic).
"""

from __future__ import annotations

import math
import time

import cv2
import numpy as np
import pytest

from cosa_edge.errors import CosaEdgeError
from cosa_edge.measure import LesionSize, measure_lesion


def ellipse_mask(shape: tuple[int, int], centre_px: tuple[float, float], semi_axes_mm: tuple[float, float],
                 angle_deg: float, spacing_mm: tuple[float, float] = (1.0, 1.0)) -> np.ndarray:
    """An ellipse sampled as a scanner samples: a pixel is lesion when its centre lies inside.

    The ellipse is defined in mm (semi-axes a along angle_deg, b across it), so with anisotropic spacing
    it is still an ellipse of those semi-axes in physical space, not in pixels.
    """
    dy, dx = spacing_mm
    rows, cols = np.mgrid[:shape[0], :shape[1]].astype(np.float64)
    x, y = (cols - centre_px[0]) * dx, (rows - centre_px[1]) * dy
    t = math.radians(angle_deg)
    along, across = x * math.cos(t) + y * math.sin(t), -x * math.sin(t) + y * math.cos(t)
    return (along / semi_axes_mm[0]) ** 2 + (across / semi_axes_mm[1]) ** 2 <= 1.0


def cv2_ellipse_mask(shape: tuple[int, int], centre: tuple[int, int], semi_axes: tuple[int, int],
                     angle_deg: float) -> np.ndarray:
    """A filled cv2.ellipse whose pixels cover semi-axes (a, b).

    cv2 fills every pixel its outline touches, reaching about half a pixel beyond the curve (a region of
    area pi*(a+1/2)*(b+1/2)), so the curve is drawn at a-1/2, b-1/2 (with 4 fractional bits) to cover a, b.
    """
    mask = np.zeros(shape, np.uint8)
    scale = 16  # shift=4: coordinates in 1/16 pixel
    cv2.ellipse(mask, (centre[0] * scale, centre[1] * scale),
                (round((semi_axes[0] - 0.5) * scale), round((semi_axes[1] - 0.5) * scale)),
                angle_deg, 0, 360, 1, thickness=-1, lineType=cv2.LINE_8, shift=4)
    return mask.astype(bool)


@pytest.mark.parametrize("angle", [0, 13, 30, 45, 60, 77, 90, 120, 150])
@pytest.mark.parametrize("semi_axes", [(60, 30), (40, 12), (25, 20), (9, 4)])
def test_ellipse_axes_within_one_pixel(angle: float, semi_axes: tuple[int, int]) -> None:
    a, b = semi_axes
    pixel = 0.1
    size = measure_lesion(ellipse_mask((160, 160), (80.3, 79.6), (a * pixel, b * pixel), angle, (pixel, pixel)),
                          (pixel, pixel))
    assert abs(size.long_axis_mm - 2 * a * pixel) <= pixel
    assert abs(size.short_axis_mm - 2 * b * pixel) <= pixel
    # The area is the pixel count: off from pi*a*b by at most the pixels along the outline, a few per cent here.
    assert size.area_mm2 == pytest.approx(math.pi * a * b * pixel**2, rel=0.1 if b < 10 else 0.03)


@pytest.mark.parametrize("angle", [0, 30, 45, 90, 135])
def test_cv2_ellipse(angle: float) -> None:
    """cv2.ellipse rounds its outline to whole pixels before filling, which adds up to half a pixel of its own
    at each end on top of the one-pixel measuring tolerance; upright, it is as exact as the sampled ellipse."""
    a, b = 60, 30
    size = measure_lesion(cv2_ellipse_mask((200, 200), (100, 100), (a, b), angle), (1.0, 1.0))
    tolerance = 1.0 if angle in (0, 90) else 1.5
    assert abs(size.long_axis_mm - 2 * a) <= tolerance
    assert abs(size.short_axis_mm - 2 * b) <= tolerance


@pytest.mark.parametrize("spacing", [(0.5, 0.5), (0.1, 0.3), (0.4, 0.1)])
def test_rectangle(spacing: tuple[float, float]) -> None:
    """An upright W x H pixel rectangle. By geometry its longest diameter is the diagonal D = sqrt(W^2 + H^2)
    (in mm: W = columns * dx, H = rows * dy), and the longest chord perpendicular to the diagonal crosses the
    centre and ends on the two long sides: it is short_side * D / long_side (for a square, the other diagonal)."""
    dy, dx = spacing
    mask = np.zeros((120, 200), bool)
    mask[20:50, 30:110] = True  # 30 rows, 80 columns
    width, height = 80 * dx, 30 * dy
    diagonal = math.hypot(width, height)
    size = measure_lesion(mask, spacing)
    assert size.area_mm2 == pytest.approx(80 * 30 * dx * dy)
    assert abs(size.long_axis_mm - diagonal) <= max(spacing)
    assert abs(size.short_axis_mm - min(width, height) * diagonal / max(width, height)) <= max(spacing)
    # The caliper runs corner to corner: its ends are within a pixel of two opposite corners of the rectangle.
    (x0, y0), (x1, y1) = size.long_axis_px
    corners = {(29.5, 19.5), (109.5, 49.5), (29.5, 49.5), (109.5, 19.5)}
    ends = [min(corners, key=lambda c: math.hypot(c[0] - x, c[1] - y)) for x, y in ((x0, y0), (x1, y1))]
    assert all(math.hypot(cx - x, cy - y) <= 1.0 for (cx, cy), (x, y) in zip(ends, ((x0, y0), (x1, y1))))
    assert ends[0][0] != ends[1][0] and ends[0][1] != ends[1][1]  # opposite corners, not two of one side


def test_bar_counts_whole_pixels() -> None:
    """A bar w pixels long measures w pixels (its end pixels count whole), not the w - 1 between their centres."""
    for w in (1, 2, 7, 40):
        mask = np.zeros((20, 60), bool)
        mask[10, 5:5 + w] = True
        size = measure_lesion(mask, (0.2, 0.2))
        assert size.long_axis_mm == pytest.approx(w * 0.2)
        assert size.short_axis_mm == pytest.approx(0.2, abs=0.01)
        assert np.ravel(size.long_axis_px) == pytest.approx([4.5, 10.0, 4.5 + w, 10.0])  # on the end pixels' edges


def test_anisotropic_circle() -> None:
    """dy = 0.1, dx = 0.2 mm: a 6 mm circle spans 30 px across and 60 px down the mask, yet measures 12 x 12 mm."""
    spacing = (0.1, 0.2)
    mask = ellipse_mask((160, 100), (50.3, 80.2), (6.0, 6.0), 0.0, spacing)
    rows, cols = np.nonzero(mask)
    assert np.ptp(rows) + 1 == pytest.approx(120, abs=1) and np.ptp(cols) + 1 == pytest.approx(60, abs=1)
    size = measure_lesion(mask, spacing)
    assert abs(size.long_axis_mm - 12.0) <= 0.2
    assert abs(size.short_axis_mm - 12.0) <= 0.2
    assert size.area_mm2 == pytest.approx(math.pi * 36.0, rel=0.02)


@pytest.mark.parametrize("angle", [0, 30, 60, 90, 135])
def test_anisotropic_rotated_ellipse(angle: float) -> None:
    """An 8 x 3 mm (semi-axes) ellipse at any angle, on pixels 0.25 mm wide and 0.1 mm tall."""
    spacing = (0.1, 0.25)
    size = measure_lesion(ellipse_mask((250, 100), (50.2, 124.7), (8.0, 3.0), angle, spacing), spacing)
    assert abs(size.long_axis_mm - 16.0) <= 0.25
    assert abs(size.short_axis_mm - 6.0) <= 0.25
    # The caliper's direction in mm follows the ellipse's axis (to a few degrees: the outline is pixelated).
    (x0, y0), (x1, y1) = size.long_axis_px
    direction = math.degrees(math.atan2((y1 - y0) * spacing[0], (x1 - x0) * spacing[1])) % 180
    assert min(abs(direction - angle), 180 - abs(direction - angle)) < 4


def test_only_the_largest_component_is_measured() -> None:
    lesion = ellipse_mask((200, 300), (100.0, 100.0), (30.0, 20.0), 20.0)
    alone = measure_lesion(lesion, (0.1, 0.1))
    mask = lesion.copy()
    mask |= ellipse_mask((200, 300), (240.0, 150.0), (12.0, 10.0), 0.0)  # a second, smaller one
    mask[190, 290] = mask[5, 5] = True  # and specks at the far corners
    assert measure_lesion(mask, (0.1, 0.1)) == alone


def test_hole_changes_area_not_axes() -> None:
    mask = ellipse_mask((200, 200), (100.0, 100.0), (50.0, 30.0), 30.0)
    filled = measure_lesion(mask, (0.1, 0.1))
    mask[95:105, 90:110] = False
    holed = measure_lesion(mask, (0.1, 0.1))
    assert holed.area_mm2 == pytest.approx(filled.area_mm2 - 200 * 0.01)
    assert (holed.long_axis_mm, holed.short_axis_mm) == (filled.long_axis_mm, filled.short_axis_mm)


def test_single_pixel() -> None:
    """One pixel counts as the ellipse inscribed in it: its long axis is its longer side, its short axis the other."""
    mask = np.zeros((10, 10), bool)
    mask[4, 6] = True
    size = measure_lesion(mask, (0.1, 0.2))
    assert size.area_mm2 == pytest.approx(0.02)
    assert size.long_axis_mm == pytest.approx(0.2)
    assert size.short_axis_mm == pytest.approx(0.1, abs=0.005)


def test_empty_mask() -> None:
    size = measure_lesion(np.zeros((480, 640), bool), (0.1, 0.1))
    assert size == LesionSize(None, None, None, None)
    assert size.record() == {"lesion_area_mm2": None, "lesion_long_axis_mm": None, "lesion_short_axis_mm": None}


def test_uncalibrated_gives_no_mm_but_the_caliper() -> None:
    mask = ellipse_mask((200, 200), (100.0, 100.0), (50.0, 20.0), 30.0)
    size = measure_lesion(mask, None)
    assert (size.area_mm2, size.long_axis_mm, size.short_axis_mm) == (None, None, None)
    assert size.record() == {"lesion_area_mm2": None, "lesion_long_axis_mm": None, "lesion_short_axis_mm": None}
    # The caliper is the one found on square pixels of any size.
    assert np.ravel(size.long_axis_px) == pytest.approx(np.ravel(measure_lesion(mask, (0.3, 0.3)).long_axis_px))
    (x0, y0), (x1, y1) = size.long_axis_px
    assert abs(math.hypot(x1 - x0, y1 - y0) - 100.0) <= 1.0


def test_record_rounds_to_hundredths() -> None:
    size = LesionSize(area_mm2=123.45678, long_axis_mm=15.0049, short_axis_mm=7.996, long_axis_px=((0, 0), (1, 1)))
    assert size.record() == {"lesion_area_mm2": 123.46, "lesion_long_axis_mm": 15.0, "lesion_short_axis_mm": 8.0}


def test_integer_masks_are_accepted() -> None:
    mask = ellipse_mask((100, 100), (50.0, 50.0), (20.0, 10.0), 0.0)
    assert measure_lesion(mask.astype(np.uint8) * 255, (0.1, 0.1)) == measure_lesion(mask, (0.1, 0.1))


@pytest.mark.parametrize("spacing", [(0.0, 0.1), (0.1, -0.2), (float("nan"), 0.1), (0.1, float("inf")), (0.1,),
                                     ("a", 0.1)])
def test_bad_spacing_is_refused(spacing: tuple) -> None:
    with pytest.raises(CosaEdgeError, match="pixel spacing"):
        measure_lesion(np.ones((5, 5), bool), spacing)


def test_fast_on_a_small_lesion_in_a_full_frame() -> None:
    """A 640 x 480 mask holding a ~100-pixel lesion: the work is on the lesion's bounding box and outline only."""
    mask = ellipse_mask((480, 640), (300.0, 200.0), (7.0, 4.5), 25.0)
    assert 80 <= mask.sum() <= 120
    measure_lesion(mask, (0.1, 0.1))  # warm up
    times = []
    for _ in range(30):
        start = time.perf_counter()
        measure_lesion(mask, (0.1, 0.1))
        times.append(time.perf_counter() - start)
    assert np.median(times) < 0.003  # typically well under 1 ms; generous for a busy shared machine
