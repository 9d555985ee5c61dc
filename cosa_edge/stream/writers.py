"""Outputs that are never left half-written: each is written under a temporary name and renamed
when complete, so an interrupted run leaves either a valid file for the frames done or nothing."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import threading
from pathlib import Path
from typing import Any, TextIO

import cv2
import numpy as np

from ..errors import CosaEdgeError

FOURCC_BY_SUFFIX = {".mp4": "mp4v", ".mov": "mp4v", ".m4v": "mp4v", ".avi": "MJPG", ".mkv": "MJPG"}


def _partial_name(path: Path) -> Path:
    return path.with_name(f".{path.stem}.partial{path.suffix}")  # keeps the suffix: OpenCV picks the container by it


def check_writable(path: Path) -> None:
    folder = path.parent if str(path.parent) else Path(".")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CosaEdgeError(f"cannot create the folder for {path}: {exc.strerror}") from None
    if not os.access(folder, os.W_OK):
        raise CosaEdgeError(f"cannot write {path}: the folder {folder} is not writable")


class VideoSink:
    """An annotated video, encoded in a thread of its own.

    Encoding a 640x480 frame takes 1-3 ms of one core; in the caller's thread it adds to the post-processing
    that, behind a fast engine (a few ms a frame), limits the whole pipeline. OpenCV's encoder releases the
    GIL, so the thread encodes while the caller draws the next frame. Frames keep their order (one queue).
    """

    QUEUE_FRAMES = 4  # frames waiting to be encoded: a little slack, and memory stays bounded

    def __init__(self, path: Path, fps: float, size: tuple[int, int]) -> None:
        self.path = Path(path)
        fourcc = FOURCC_BY_SUFFIX.get(self.path.suffix.lower())
        if fourcc is None:
            raise CosaEdgeError(f"cannot write video {path}: use one of {', '.join(FOURCC_BY_SUFFIX)}")
        check_writable(self.path)
        self.partial = _partial_name(self.path)
        self.writer = cv2.VideoWriter(str(self.partial), cv2.VideoWriter_fourcc(*fourcc), fps, size, isColor=True)
        if not self.writer.isOpened():
            raise self._cause(fourcc, fps, size)
        self.size, self.frames = size, 0
        self._queue: queue.Queue = queue.Queue(maxsize=self.QUEUE_FRAMES)
        self._error: BaseException | None = None
        self._encoder = threading.Thread(target=self._encode, name="video-encoder", daemon=True)
        self._encoder.start()

    def _cause(self, fourcc: str, fps: float, size: tuple[int, int]) -> CosaEdgeError:
        """Why the writer did not open, found by trying a plain size and rate: the codec itself works here, so
        the source's frame size (mp4v holds 2 to 8191 pixels a side) or its frame rate (mp4v holds at most
        65535 frames/s) is the cause, not the output."""
        plain_size, plain_rate = (64, 48), 25.0
        if _opens(self.partial, fourcc, fps, plain_size):
            return CosaEdgeError(f"cannot write {self.path.name}: {fourcc} video cannot hold the source's frames of "
                                 f"{size[0]}x{size[1]} pixels; write an .avi (MJPG) instead, or check the source's "
                                 "frame size")
        if _opens(self.partial, fourcc, plain_rate, size):
            return CosaEdgeError(f"cannot write {self.path.name}: {fourcc} video cannot hold the source's frame rate "
                                 f"of {fps:g} frames/s; write an .avi (MJPG) instead, or check the source's frame "
                                 "rate")
        return CosaEdgeError(f"OpenCV cannot write {fourcc} video to {self.path}")

    def _encode(self) -> None:
        while (frame := self._queue.get()) is not None:
            if self._error is None:
                try:
                    self.writer.write(frame)
                except BaseException as exc:  # re-raised in the caller's thread at close
                    self._error = exc

    def write(self, frame: np.ndarray) -> None:
        if self._error is not None:
            raise CosaEdgeError(f"encoding {self.path.name} failed: {self._error}")
        if frame.shape[1::-1] != self.size:
            frame = cv2.resize(frame, self.size)
        self._queue.put(frame)  # the caller hands the frame over and does not change it afterwards
        self.frames += 1

    def close(self) -> None:
        self._queue.put(None)
        self._encoder.join()
        self.writer.release()
        if self.frames and self._error is None:
            os.replace(self.partial, self.path)
        else:
            with contextlib.suppress(FileNotFoundError):
                self.partial.unlink()
        if self._error is not None:
            raise CosaEdgeError(f"encoding {self.path.name} failed: {self._error}")


def _opens(path: Path, fourcc: str, fps: float, size: tuple[int, int]) -> bool:
    """Whether OpenCV opens a ``fourcc`` video of ``size`` at ``path`` (nothing is left there)."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, size, isColor=True)
    opened = writer.isOpened()
    writer.release()
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    return opened


class ImageSink:
    """For a single-image source: the annotated image itself."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        check_writable(self.path)
        self.last: np.ndarray | None = None
        self.frames = 0

    def write(self, frame: np.ndarray) -> None:
        self.last, self.frames = frame, self.frames + 1

    def close(self) -> None:
        if self.last is None:
            return
        ok, data = cv2.imencode(self.path.suffix or ".png", self.last)
        if not ok:
            raise CosaEdgeError(f"cannot encode {self.path}: use .png or .jpg")
        from ..fileio import atomic_write_bytes

        atomic_write_bytes(self.path, data.tobytes())


class JsonlSink:
    """One JSON record a line. ``header``: the first line (the run's audit header); ``fields``: merged into every
    record written after it (e.g. the engine's hash, so that each record says which model produced it)."""

    def __init__(self, path: Path, header: dict[str, Any] | None = None, fields: dict[str, Any] | None = None) -> None:
        self.path = Path(path)
        check_writable(self.path)
        self.partial = _partial_name(self.path)
        self.handle: TextIO = self.partial.open("w", encoding="utf-8")
        self.fields = dict(fields or {})
        self.records = 0  # frame records, the header not counted
        if header is not None:
            self.handle.write(json.dumps(header) + "\n")

    def write(self, record: dict[str, Any]) -> None:
        self.handle.write(json.dumps({**record, **self.fields}) + "\n")
        self.records += 1

    def close(self) -> None:
        self.handle.flush()
        os.fsync(self.handle.fileno())
        self.handle.close()
        os.replace(self.partial, self.path)
