"""Frame sources: video files, images, folders of images, cameras and streams, all as one iterator."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ..data.folder import IMAGE_SUFFIXES
from ..data.imageio import read_frame
from ..errors import CosaEdgeError


@dataclass
class Frame:
    index: int
    timestamp: float  # seconds from the start of the source (video time, or capture time for live sources)
    image: np.ndarray  # as decoded: grey or BGR
    captured_at: float = field(default_factory=time.perf_counter)  # for capture-to-result latency


@dataclass
class SourceInfo:
    kind: str  # video, image, folder, camera, stream
    fps: float
    width: int
    height: int
    frame_count: int | None  # None for live sources
    live: bool


class FrameSource:
    """Iterate frames; after iteration, ``stopped_early`` says whether a file ended before its frame count."""

    def __init__(self, spec: str) -> None:
        self.spec = spec
        self.frames_read = 0
        self.stopped_early: str | None = None
        path = Path(spec)
        if spec.isdigit():
            self._open_capture(int(spec), "camera", live=True)
        elif "://" in spec:
            self._open_capture(spec, "stream", live=True)
        elif path.is_dir():
            self._paths = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not self._paths:
                raise CosaEdgeError(f"folder {path} holds no images ({', '.join(IMAGE_SUFFIXES)})")
            first = read_frame(self._paths[0])
            self.info = SourceInfo("folder", 10.0, first.shape[1], first.shape[0], len(self._paths), live=False)
        elif path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
            self._paths = [path]
            first = read_frame(path)
            self.info = SourceInfo("image", 1.0, first.shape[1], first.shape[0], 1, live=False)
        elif path.is_file():
            self._open_capture(str(path), "video", live=False)
        else:
            raise CosaEdgeError(f"source {spec} does not exist (give a video file, an image, a folder, a camera index or a URL)")

    def _open_capture(self, target: int | str, kind: str, live: bool) -> None:
        capture = cv2.VideoCapture(target)
        if not capture.isOpened():
            raise CosaEdgeError(f"cannot open {kind} {target}: OpenCV cannot decode it (corrupt file, unsupported "
                                "codec or unreachable device); convert it to H.264 MP4 or MJPEG AVI")
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) if not live else 0
        fps = capture.get(cv2.CAP_PROP_FPS) or 0.0
        width, height = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        if not live and (count <= 0 or width <= 0):
            ok, _ = capture.read()
            if not ok:
                capture.release()
                raise CosaEdgeError(f"video {target} has no frames that OpenCV can read")
            capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
        self._capture = capture
        self.info = SourceInfo(kind, fps if 0 < fps < 1000 else 25.0, width, height, count if count > 0 else None, live)

    def __iter__(self) -> Iterator[Frame]:
        if hasattr(self, "_paths"):
            for index, path in enumerate(self._paths):
                self.frames_read += 1
                yield Frame(index, index / self.info.fps, read_frame(path))
            return
        capture, started = self._capture, time.perf_counter()
        try:
            index = 0
            while True:
                ok, image = capture.read()
                if not ok or image is None:
                    break
                stamp = time.perf_counter() - started if self.info.live else index / self.info.fps
                self.frames_read += 1
                yield Frame(index, stamp, image)
                index += 1
        finally:
            capture.release()
        expected = self.info.frame_count
        if expected and not self.info.live and self.frames_read < expected:
            self.stopped_early = (f"{self.spec}: decoding stopped at frame {self.frames_read} of {expected} "
                                  "(the file is truncated or corrupt there); the frames before it were processed")
