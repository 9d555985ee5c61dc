"""``--roi auto``: find a scanner's imaging area in a screen capture or HDMI recording by itself.

A recording of a scanner's screen shows the image plus what the scanner draws
around it: patient and exam text, depth rulers, logos, a frame counter or a clock.
Only the image changes over most of its surface from frame to frame (speckle
decorrelates as the probe moves, and the tissue slides under it); the overlays are
static, or change in small spots (a counter's digits). So the imaging area is the
largest solid area that changes, found from the first frames of the stream:

1. activity: each pixel's standard deviation over the frames (grey levels);
2. moving pixels: activity above two fifths of the level that the most active
   ``min_share / 2`` of the frame reaches; an imaging area of at least
   ``min_share`` of the frame puts that level inside its own speckle, while small
   changing overlays cannot move it; and never below a noise floor, so
   compression or capture noise on a still screen is not "moving";
3. a morphological closing (about 2% of the frame) turns the speckle's pixels,
   and the holes that static marks drawn on the image leave, into one solid area,
   yet bridges no gap wider than that, so a counter some distance off stays apart;
   a small opening then drops isolated specks and one- or two-pixel threads;
4. the largest connected area, refused when under ``min_share`` of the frame, and
   its bounding box (a sector-shaped image gives the box around the fan).

When the image jitters a few pixels over the frames (probe or capture jitter) its
edges flicker, so the box is the area the image covered, at most the jitter wider
than one frame's image, and static text beside it stays outside. numpy and OpenCV only.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from ..data.imageio import to_grey_uint8
from ..errors import CosaEdgeError

Box = tuple[int, int, int, int]  # x, y, w, h

#: Below this standard deviation (grey levels) a pixel is still: above the noise that capture and compression
#: leave on a static screen (about one grey level), well below B-mode speckle's (tens of grey levels).
NOISE_FLOOR = 3.0
#: A moving pixel varies at least this share of the imaging area's typical activity. Log-compressed speckle
#: varies by about as much in dark tissue as in bright, so two fifths keeps all of the image (in phantom
#: sweeps its least active 1% reach over half the typical level) yet drops what video compression stirs up
#: in the blocks that straddle the image's edge, and the flicker of a still edge that jitters.
RELATIVE_THRESHOLD = 0.4
#: The closing's size as a share of the frame's shorter side: wide enough to fill the holes of text and
#: marks drawn over the image, narrower than the usual gap between the image and the scanner's info panel.
CLOSING_SHARE = 0.02
#: The opening's size, small so a fan's narrow apex loses at most a pixel or two.
OPENING_SIZE = 3

_ADVICE = "give --roi x,y,w,h instead"


def find_imaging_region(frames: Sequence[np.ndarray], min_share: float = 0.05) -> Box:
    """The scanner's imaging area (x, y, w, h) in the first frames of a recording.

    ``frames``: the first N decoded frames (uint8 grey (H, W) or BGR (H, W, 3)), N >= 2, typically 30-60:
    enough for the speckle to change everywhere in the image. ``min_share``: the least share of the frame
    the moving area must cover to count as an image. The method is in this module's docstring.

    Raises CosaEdgeError (saying to give --roi x,y,w,h) for fewer than two frames, frames of different
    sizes, or no moving area of at least ``min_share`` of the frame (a still image, a blank video).
    """
    if not 0.0 < min_share <= 1.0:
        raise ValueError(f"min_share must lie in (0, 1], not {min_share}")
    grey = _grey_frames(frames)
    activity = _activity(grey)
    moving = _moving_pixels(activity, min_share, len(grey))
    return _largest_area_box(moving, min_share)


def _grey_frames(frames: Sequence[np.ndarray]) -> list[np.ndarray]:
    """The frames as uint8 grey, all one size; refused where there are too few or their sizes differ."""
    frames = list(frames)
    if len(frames) < 2:
        raise CosaEdgeError(f"--roi auto needs a moving image over at least 2 frames, but the video gave "
                            f"{len(frames)}; {_ADVICE}")
    grey = [to_grey_uint8(np.asarray(frame), what=f"frame {i}") for i, frame in enumerate(frames)]
    for i, image in enumerate(grey[1:], start=1):
        if image.shape != grey[0].shape:
            raise CosaEdgeError(f"--roi auto needs a moving image in frames of one size, but frame {i} is "
                                f"{image.shape[1]}x{image.shape[0]} and frame 0 {grey[0].shape[1]}x"
                                f"{grey[0].shape[0]}; {_ADVICE}")
    return grey


def _activity(grey: list[np.ndarray]) -> np.ndarray:
    """Each pixel's standard deviation over the frames (float32 grey levels), from running sums.

    Running sums keep memory at two frames' worth however many frames come; float64 keeps the
    difference of the sums exact enough for a near-still pixel.
    """
    total = np.zeros(grey[0].shape, np.float64)
    squares = np.zeros(grey[0].shape, np.float64)
    for image in grey:
        cv2.accumulate(image, total)
        cv2.accumulateSquare(image, squares)
    mean = total / len(grey)
    return np.sqrt(np.maximum(squares / len(grey) - mean * mean, 0.0)).astype(np.float32)


def _moving_pixels(activity: np.ndarray, min_share: float, frames: int) -> np.ndarray:
    """The moving pixels as one solid area per moving region (uint8 0/1), after closing and opening."""
    # The level the most active min_share/2 of the frame reaches: inside an imaging area of at least
    # min_share, whatever the overlays do in spots smaller than that.
    typical = float(np.percentile(activity, 100.0 * (1.0 - min_share / 2.0)))
    if typical < NOISE_FLOOR:
        raise CosaEdgeError(f"--roi auto needs a moving image, but nothing covering {min_share:.0%} of the frame "
                            f"changes over the first {frames} frames (a still or blank picture); {_ADVICE}")
    moving = (activity > max(NOISE_FLOOR, RELATIVE_THRESHOLD * typical)).astype(np.uint8)
    size = 2 * round(CLOSING_SHARE * min(activity.shape) / 2) + 1  # odd, so the kernel has a centre
    closing = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (max(size, 3),) * 2)
    moving = cv2.morphologyEx(moving, cv2.MORPH_CLOSE, closing)
    opening = cv2.getStructuringElement(cv2.MORPH_RECT, (OPENING_SIZE, OPENING_SIZE))
    return cv2.morphologyEx(moving, cv2.MORPH_OPEN, opening)


def _largest_area_box(moving: np.ndarray, min_share: float) -> Box:
    """The bounding box of the largest 8-connected moving area; refused when under min_share of the frame."""
    count, _, stats, _ = cv2.connectedComponentsWithStats(moving, connectivity=8)
    area = int(stats[1:, cv2.CC_STAT_AREA].max()) if count > 1 else 0
    share = area / moving.size
    if share < min_share:
        raise CosaEdgeError(f"--roi auto needs a moving image, but the largest moving area covers {share:.1%} of "
                            f"the frame, under the {min_share:.0%} an imaging area covers; {_ADVICE}")
    biggest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    x, y, w, h = (int(v) for v in stats[biggest, :4])
    return x, y, w, h
