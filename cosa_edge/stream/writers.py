"""Outputs that are never left half-written: each is written under a temporary name and renamed
when complete, so an interrupted run leaves either a valid file for the frames done or nothing."""

from __future__ import annotations

import contextlib
import json
import os
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
    def __init__(self, path: Path, fps: float, size: tuple[int, int]) -> None:
        self.path = Path(path)
        fourcc = FOURCC_BY_SUFFIX.get(self.path.suffix.lower())
        if fourcc is None:
            raise CosaEdgeError(f"cannot write video {path}: use one of {', '.join(FOURCC_BY_SUFFIX)}")
        check_writable(self.path)
        self.partial = _partial_name(self.path)
        self.writer = cv2.VideoWriter(str(self.partial), cv2.VideoWriter_fourcc(*fourcc), fps, size, isColor=True)
        if not self.writer.isOpened():
            raise CosaEdgeError(f"OpenCV cannot write {fourcc} video to {path}")
        self.size, self.frames = size, 0

    def write(self, frame: np.ndarray) -> None:
        if frame.shape[1::-1] != self.size:
            frame = cv2.resize(frame, self.size)
        self.writer.write(frame)
        self.frames += 1

    def close(self) -> None:
        self.writer.release()
        if self.frames:
            os.replace(self.partial, self.path)
        else:
            with contextlib.suppress(FileNotFoundError):
                self.partial.unlink()


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
