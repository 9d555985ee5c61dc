"""Frame times of a cine loop from its timing tags (Frame Time, Frame Time Vector, Cine Rate), in seconds."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .dicom_header import tag_number, tag_numbers

@dataclass(frozen=True)
class FrameTiming:
    fps: float | None
    timestamps: list[float]
    source: str
    warnings: list[str]


def _frame_time(dataset: Any, frames: int) -> FrameTiming | None:
    """Frame Time (0018,1063): the same interval, in ms, between every pair of frames."""
    frame_time = tag_number(dataset, "FrameTime")
    if frame_time is None:
        return None
    if not (np.isfinite(frame_time) and frame_time > 0):
        return FrameTiming(None, [], "", [f"Frame Time {frame_time:g} ms is not positive and was ignored"])
    return FrameTiming(1000.0 / frame_time, [i * frame_time / 1000.0 for i in range(frames)], "frame_time", [])


def _frame_time_vector(dataset: Any, frames: int) -> FrameTiming | None:
    """Frame Time Vector (0018,1065): each frame's increment in ms from the previous one (the first is 0)."""
    increments = tag_numbers(dataset, "FrameTimeVector")
    if increments is None:
        return None
    notes: list[str] = []
    if len(increments) == frames - 1:
        # Some writers leave out the first frame's 0 increment.
        increments, notes = [0.0, *increments], ["Frame Time Vector had one entry too few; frame 0 was put at 0 s"]
    if len(increments) != frames or not all(np.isfinite(increments)) or any(step < 0 for step in increments[1:]):
        return FrameTiming(None, [], "", [f"Frame Time Vector ({len(increments)} entries for {frames} frames, or "
                                      "negative steps) does not fit the frames and was ignored"])
    times = np.cumsum(increments) / 1000.0
    times = times - times[0]  # seconds from the first frame, whatever the first entry holds
    steps = np.asarray(increments[1:])
    fps = 1000.0 / float(steps.mean()) if steps.size and steps.mean() > 0 else None
    return FrameTiming(fps, [float(t) for t in times], "frame_time_vector", notes)


def _cine_rate(dataset: Any, frames: int) -> FrameTiming | None:
    """Cine Rate (0018,0040): frames per second."""
    rate = tag_number(dataset, "CineRate")
    if rate is None:
        return None
    if not (np.isfinite(rate) and rate > 0):
        return FrameTiming(None, [], "", [f"Cine Rate {rate:g} is not positive and was ignored"])
    return FrameTiming(rate, [i / rate for i in range(frames)], "cine_rate", [])


def frame_timing(dataset: Any, frames: int) -> FrameTiming:
    """Frame times in PS3.3's order of precedence; the tags are used whatever Frame Increment Pointer says."""
    notes: list[str] = []
    for reader in (_frame_time, _frame_time_vector, _cine_rate):
        timing = reader(dataset, frames)
        if timing is None:
            continue
        notes += timing.warnings
        if timing.source:
            return FrameTiming(timing.fps, timing.timestamps, timing.source, notes)
    if frames > 1:
        notes.append("the file states no frame timing (Frame Time, Frame Time Vector or Cine Rate); "
                     "every timestamp is 0 s")
    # Zeros, not invented seconds: the caller sees timing_source "none" and picks its own frame rate.
    return FrameTiming(None, [0.0] * frames, "none", notes)
