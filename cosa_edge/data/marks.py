"""On-screen calipers in B-mode images: found, removed and drawn (issue #23's shortcut control).

A sonographer measuring a lesion leaves calipers on the saved image: small white "+" crosses, often numbered and
joined by a dotted line. In BUSI they sit on about one lesion image in seven and on no normal image, so a model
could learn "calipers, so a lesion" instead of looking at tissue. scripts/shortcut_control.py asks whether it did:
presence on lesion images with and without calipers, on the same images with their marks removed, and on normal
images with calipers drawn in.

The finder correlates the image's bright thin detail (a white top-hat) with "+" templates of the sizes BUSI's
calipers come in; the remover inpaints small saturated marks (crosses, digits, text, dots). Both were set by
looking at BUSI images; the limits are stated at the constants. Torch-free.
"""

from __future__ import annotations

import cv2
import numpy as np

#: The white top-hat's window: wider than a caliper's arm, narrower than tissue structures it should keep.
TOP_HAT_WINDOW = 15
#: Caliper crosses in BUSI are 7-13 pixels across with 1-3 pixel arms.
CROSS_SIZES = (7, 9, 11, 13)
CROSS_THICKNESSES = (1, 2, 3)
#: Above this correlation an image holds a caliper. On all 780 BUSI images, no normal image scores above 0.9;
#: a look at lesion images between 0.8 and 0.95 found calipers from about 0.87 up and none below 0.85.
CALIPER_THRESHOLD = 0.87
#: What the remover takes for a mark: near-saturated (marks are drawn at full white), standing out from its
#: surroundings, in a connected piece no larger than a numbered cross. Bright tissue specks that meet all three
#: go too (about 1-2% of a normal image's pixels): the control applies the same removal to every image so that
#: this acts alike on images with and without calipers.
MARK_MIN_GREY = 225
MARK_MIN_TOP_HAT = 60
MARK_MAX_AREA = 400


def _grey(image: np.ndarray) -> np.ndarray:
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    return np.ascontiguousarray(image, dtype=np.uint8)


def _top_hat(grey: np.ndarray) -> np.ndarray:
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (TOP_HAT_WINDOW, TOP_HAT_WINDOW))
    return cv2.morphologyEx(grey, cv2.MORPH_TOPHAT, kernel)


def _cross(size: int, thickness: int) -> np.ndarray:
    template = np.zeros((size, size), np.float32)
    centre, half = size // 2, thickness // 2
    template[centre - half:centre - half + thickness, :] = 255.0
    template[:, centre - half:centre - half + thickness] = 255.0
    return template


_TEMPLATES = [_cross(size, thickness) for size in CROSS_SIZES for thickness in CROSS_THICKNESSES]


def caliper_score(image: np.ndarray) -> float:
    """The best normalised correlation of the image's bright thin detail with a "+" cross (1: a perfect cross)."""
    detail = _top_hat(_grey(image)).astype(np.float32)
    if min(detail.shape) < max(CROSS_SIZES):
        return 0.0
    return max(float(cv2.matchTemplate(detail, template, cv2.TM_CCOEFF_NORMED).max()) for template in _TEMPLATES)


def has_calipers(image: np.ndarray) -> bool:
    return caliper_score(image) >= CALIPER_THRESHOLD


def mark_mask(image: np.ndarray) -> np.ndarray:
    """The pixels of small saturated marks (calipers, digits, text), grown by one pixel for the inpainting."""
    grey = _grey(image)
    candidates = ((grey >= MARK_MIN_GREY) & (_top_hat(grey) >= MARK_MIN_TOP_HAT)).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(candidates, connectivity=8)
    small = np.zeros(count, bool)
    small[1:] = stats[1:, cv2.CC_STAT_AREA] <= MARK_MAX_AREA
    return cv2.dilate(small[labels].astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)


def remove_marks(image: np.ndarray) -> np.ndarray:
    """The image with its small saturated marks inpainted from their surroundings (Telea's method)."""
    grey = _grey(image)
    mask = mark_mask(grey)
    if not mask.any():
        return grey.copy()
    return cv2.inpaint(grey, mask.astype(np.uint8), 3, cv2.INPAINT_TELEA)


def draw_calipers(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The image with a measurement drawn as BUSI's scanners draw one: two numbered pairs of white "+" crosses
    joined by dotted lines, across a random spot in the middle of the field."""
    grey = _grey(image).copy()
    height, width = grey.shape
    centre = np.array([rng.uniform(0.3, 0.7) * width, rng.uniform(0.3, 0.6) * height])
    arm = max(3, int(round(min(height, width) * 0.01)))  # 5 pixels on a 500-pixel image: a 11-pixel cross
    extent = min(height, width) * rng.uniform(0.08, 0.2)
    first = rng.uniform(0, np.pi)
    for number, angle in enumerate((first, first + np.pi / 2), start=1):  # a length and a width, at right angles
        offset = extent * np.array([np.cos(angle), np.sin(angle)])
        ends = [np.round(centre - offset).astype(int), np.round(centre + offset).astype(int)]
        for t in np.linspace(0.0, 1.0, int(2 * extent / 4)):  # a dot every 4 pixels
            x, y = np.round(ends[0] + t * (ends[1] - ends[0])).astype(int)
            if 0 <= x < width and 0 <= y < height:
                grey[y, x] = 255
        for x, y in ends:
            cv2.line(grey, (int(x) - arm, int(y)), (int(x) + arm, int(y)), 255, 1)
            cv2.line(grey, (int(x), int(y) - arm), (int(x), int(y) + arm), 255, 1)
        label_x, label_y = int(ends[0][0]) - 3 * arm, int(ends[0][1]) - arm
        cv2.putText(grey, str(number), (label_x, label_y), cv2.FONT_HERSHEY_PLAIN, 0.8, 255, 1)
    return grey
