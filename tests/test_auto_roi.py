"""--roi auto: the scanner's imaging area found in screen recordings built like a scanner's display.

Each recording is 480 x 640 BGR: a dark screen, a header bar with a fake patient name, a clock and a
frame counter that change every frame, a depth ruler (tick marks and numbers) down the image's left
side, a static logo, and a probe sweep of phantom B-mode frames pasted at a known place (whole, or
cut to a fan with black outside it, or jittering by up to 3 px per frame).
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np
import pytest

from cosa_edge.data.phantom import phantom_sweep
from cosa_edge.errors import CosaEdgeError
from cosa_edge.stream.auto_roi import find_imaging_region

HEIGHT, WIDTH = 480, 640
IMAGE = (150, 60, 400, 360)  # x, y, w, h where the sweep's frames are pasted
BACKGROUND = 12
FONT = cv2.FONT_HERSHEY_SIMPLEX
FRAMES = 40
# Each side of the box found is within this many pixels of the image's (more where the image jitters).
TOLERANCE = 4
JITTER = 3
REFUSED = r"--roi auto needs a moving image.*give --roi x,y,w,h instead"

Box = tuple[int, int, int, int]


def _text_box(text: str, origin: tuple[int, int], scale: float, thickness: int) -> Box:
    (w, h), baseline = cv2.getTextSize(text, FONT, scale, thickness)
    return origin[0], origin[1] - h, w, h + baseline


HEADER = (0, 0, WIDTH, 37)
LOGO = (570, 420, 56, 46)
RULER_TICKS = (IMAGE[0] - 14, IMAGE[1], 10, IMAGE[3])  # x from 136 to 145: 5 px clear of the image
COUNTER = _text_box("Frame 0000", (10, 462), 0.6, 1)  # changes every frame, below and left of the image
CLOCK = _text_box("12:00:00", (540, 25), 0.6, 1)  # changes every frame, in the header
DEPTH_NUMBERS = (IMAGE[0] - 36, IMAGE[1] - 8, 14, IMAGE[3] + 8)
OVERLAYS = {"header": HEADER, "logo": LOGO, "ruler": RULER_TICKS, "counter": COUNTER, "clock": CLOCK,
            "depth numbers": DEPTH_NUMBERS}


@lru_cache(maxsize=None)
def _sweep(seed: int, frames: int, height: int, width: int) -> tuple[np.ndarray, ...]:
    """The phantom sweep's grey frames, made once per test session (a sweep takes a few tenths of a second)."""
    return tuple(frame.image for frame in phantom_sweep(seed, frames=frames, size=(height, width)))


def _fan(kind: str) -> np.ndarray:
    """A sector mask the size of the image: a convex probe's fan (its apex cut by an arc) or a phased array's."""
    w, h = IMAGE[2], IMAGE[3]
    mask = np.zeros((h, w), np.uint8)
    apex = (w // 2, -40) if kind == "convex" else (w // 2, 0)
    radius = h - apex[1]
    cv2.ellipse(mask, apex, (radius, radius), 90, -35, 35, 1, thickness=-1)
    if kind == "convex":
        cv2.circle(mask, apex, 80, 0, thickness=-1)
    return mask


def _screen() -> np.ndarray:
    """The scanner's screen without its image: background, header and the static parts."""
    frame = np.full((HEIGHT, WIDTH, 3), BACKGROUND, np.uint8)
    x, y, w, h = HEADER
    cv2.rectangle(frame, (x, y), (x + w - 1, y + h - 1), (60, 50, 40), thickness=-1)
    cv2.putText(frame, "DOE^JANE  ID 0012345  1970-01-01", (10, 25), FONT, 0.6, (230, 230, 230), 1)
    return frame


def _overlays(frame: np.ndarray, index: int) -> None:
    """What a scanner draws over and around its image: static ruler and logo, a changing counter and clock."""
    x0, y0, _, h = IMAGE
    for depth in range(0, h, 20):
        major = depth % 100 == 0
        cv2.line(frame, (x0 - 14, y0 + depth), (x0 - 5 if major else x0 - 8, y0 + depth), (200, 200, 200), 1)
        if major:
            cv2.putText(frame, str(depth // 100), (x0 - 34, y0 + depth + 5), FONT, 0.45, (200, 200, 200), 1)
    x, y, w, h = LOGO
    cv2.rectangle(frame, (x, y), (x + w - 1, y + h - 1), (90, 160, 200), thickness=-1)
    cv2.putText(frame, f"Frame {index:04d}", (10, 462), FONT, 0.6, (255, 255, 255), 1)
    cv2.putText(frame, f"12:00:{index % 60:02d}", (540, 25), FONT, 0.6, (255, 255, 255), 1)


def recording(frames: int = FRAMES, jitter: int = 0, fan: str | None = None, seed: int = 3) -> list[np.ndarray]:
    """A scanner's screen recording; the image's own place moves by up to ``jitter`` px each frame."""
    x0, y0, w, h = IMAGE
    rng = np.random.default_rng(seed)
    sector = _fan(fan) if fan else None
    video = []
    for index, image in enumerate(_sweep(seed, frames, h, w)):
        frame = _screen()
        dx, dy = (int(v) for v in rng.integers(-jitter, jitter + 1, size=2)) if jitter else (0, 0)
        picture = image * sector if sector is not None else image
        frame[y0 + dy:y0 + dy + h, x0 + dx:x0 + dx + w] = picture[:, :, None]
        _overlays(frame, index)
        video.append(frame)
    return video


def _sides(box: Box) -> np.ndarray:
    x, y, w, h = box
    return np.array([x, y, x + w, y + h])


def assert_close(found: Box, expected: Box, tolerance: int) -> None:
    """Each side (left, top, right, bottom) of ``found`` within ``tolerance`` px of ``expected``'s."""
    error = np.abs(_sides(found) - _sides(expected))
    assert error.max() <= tolerance, f"found {found}, expected {expected} (sides off by {error.tolist()})"


def assert_clear_of_overlays(found: Box) -> None:
    left, top, right, bottom = _sides(found)
    for name, box in OVERLAYS.items():
        o_left, o_top, o_right, o_bottom = _sides(box)
        apart = right <= o_left or o_right <= left or bottom <= o_top or o_bottom <= top
        assert apart, f"the box {found} takes in the {name} at {box}"


def _jpeg(frame: np.ndarray, quality: int) -> np.ndarray:
    ok, data = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return cv2.imdecode(data, cv2.IMREAD_COLOR)


def test_finds_the_image_among_overlays() -> None:
    found = find_imaging_region(recording())
    assert_close(found, IMAGE, TOLERANCE)
    assert_clear_of_overlays(found)


def test_grey_frames_give_the_same_box() -> None:
    video = recording()
    grey = [cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) for frame in video]
    assert find_imaging_region(grey) == find_imaging_region(video)


def test_jittering_image() -> None:
    """The image moves by up to 3 px each frame: the box is where it was, within the jitter plus the tolerance,
    and the ruler 5 px beside it stays out."""
    found = find_imaging_region(recording(jitter=JITTER))
    assert_close(found, IMAGE, JITTER + TOLERANCE)
    assert_clear_of_overlays(found)


@pytest.mark.parametrize("jitter", [0, JITTER])
@pytest.mark.parametrize("kind", ["convex", "phased"])
def test_fan_gives_the_box_around_the_fan(kind: str, jitter: int) -> None:
    x, y, w, h = cv2.boundingRect(_fan(kind))
    fan_box = (IMAGE[0] + x, IMAGE[1] + y, w, h)
    found = find_imaging_region(recording(jitter=jitter, fan=kind))
    assert_close(found, fan_box, jitter + TOLERANCE)
    assert_clear_of_overlays(found)


def test_compressed_recording() -> None:
    """JPEG at quality 50 re-encodes the 8 x 8 blocks the image reaches into; the box still keeps to the image."""
    found = find_imaging_region([_jpeg(frame, 50) for frame in recording(jitter=JITTER)])
    assert_close(found, IMAGE, JITTER + TOLERANCE)
    assert_clear_of_overlays(found)


def test_image_filling_the_frame() -> None:
    video = _sweep(5, 30, 240, 320)
    assert_close(find_imaging_region(video), (0, 0, 320, 240), TOLERANCE)


def test_small_moving_area_is_refused_unless_allowed() -> None:
    """A 60 x 60 moving patch is 1.2% of a 480 x 640 frame: refused at the default 5%, found at 1%."""
    video = []
    for image in _sweep(8, 30, 60, 60):
        frame = np.full((HEIGHT, WIDTH), BACKGROUND, np.uint8)
        frame[100:160, 200:260] = image
        video.append(frame)
    with pytest.raises(CosaEdgeError, match=REFUSED):
        find_imaging_region(video)
    assert_close(find_imaging_region(video, min_share=0.01), (200, 100, 60, 60), TOLERANCE)


def test_frozen_image_with_a_running_counter_is_refused() -> None:
    """A still image whose counter and clock still change: overlays alone are no imaging area."""
    still = recording()[0]
    video = []
    for index in range(FRAMES):
        frame = still.copy()
        x, y, w, h = COUNTER
        frame[y:y + h, x:x + w] = BACKGROUND
        x, y, w, h = CLOCK
        frame[y:y + h, x:x + w] = (60, 50, 40)
        _overlays(frame, index)
        video.append(frame)
    with pytest.raises(CosaEdgeError, match=REFUSED):
        find_imaging_region(video)


@pytest.mark.parametrize("what", ["still", "blank"])
def test_no_moving_image_is_refused(what: str) -> None:
    frame = recording(frames=2)[0] if what == "still" else np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    with pytest.raises(CosaEdgeError, match=REFUSED):
        find_imaging_region([frame.copy() for _ in range(30)])


@pytest.mark.parametrize("count", [0, 1])
def test_too_few_frames_are_refused(count: int) -> None:
    with pytest.raises(CosaEdgeError, match=REFUSED):
        find_imaging_region(recording(frames=2)[:count])


def test_frames_of_different_sizes_are_refused() -> None:
    video = recording(frames=4)
    video[2] = cv2.resize(video[2], (320, 240))
    with pytest.raises(CosaEdgeError, match=REFUSED):
        find_imaging_region(video)
