"""Frame sources: video files, images, folders of images, DICOM files and series, cameras and streams, as one iterator.

DICOM is recognised by content (the Part 10 preamble), never by suffix, and never reaches OpenCV's video
reader, which reads a cine loop's JPEG frames as a stream and silently loses frames and the frame rate
(pydicom finds the frames; OpenCV may decode a JPEG frame's bytes, data/dicom.py). Each DICOM frame
carries the scanner's 2D tissue region (its region of interest) and the region's pixel spacing in mm.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ..data.dicom import DicomImage, dicom_series, is_dicom, tissue_region
from ..data.folder import IMAGE_SUFFIXES
from ..data.imageio import read_frame
from ..errors import CosaEdgeError

Roi = tuple[int, int, int, int]  # x, y, w, h
#: Suffixes that name a file as DICOM; such a file without the DICOM preamble is refused, not guessed at.
DICOM_SUFFIXES = (".dcm", ".dicom", ".dic")


@dataclass
class Frame:
    index: int
    timestamp: float  # seconds from the start of the source (video time, or capture time for live sources)
    image: np.ndarray  # as decoded: grey or BGR
    captured_at: float = field(default_factory=time.perf_counter)  # for capture-to-result latency
    # DICOM only: the instance (its Instance Number, never a UID), the scanner's 2D tissue region and its spacing.
    instance: int | None = None
    region: Roi | None = None
    spacing_mm: tuple[float, float] | None = None


@dataclass
class SourceInfo:
    kind: str  # video, image, folder, dicom, dicom_series, camera, stream
    fps: float
    width: int
    height: int
    frame_count: int | None  # None for live sources
    live: bool
    notes: list[str] = field(default_factory=list)  # warnings about the source to show once (clamped regions)


class FrameSource:
    """Iterate frames; after iteration, ``stopped_early`` says whether a file ended before its frame count."""

    def __init__(self, spec: str, region: int | None = None) -> None:
        """``region``: which 2D tissue region of a DICOM frame to use where it holds several (dual view), from 0."""
        self.spec = spec
        self.frames_read = 0
        self.stopped_early: str | None = None
        self._dicom: list[DicomImage] = []
        self._region_choice = region
        path = Path(spec)
        if spec.isdigit():
            self._open_capture(int(spec), "camera", live=True)
        elif "://" in spec:
            self._open_capture(spec, "stream", live=True)
        elif path.is_file() and is_dicom(path):
            self._open_dicom([DicomImage(path)], "dicom")
        elif path.is_file() and path.suffix.lower() in DICOM_SUFFIXES:
            # Named DICOM but without the Part 10 preamble: never hand it to OpenCV, which would guess.
            raise CosaEdgeError(f"{path.name} is named as DICOM but is not a DICOM Part 10 file (no 'DICM' marker "
                                "after its 128-byte preamble); export it again from the scanner or PACS")
        elif path.is_dir() and any(is_dicom(p) for p in path.iterdir() if p.is_file()):
            self._open_dicom(dicom_series(path), "dicom_series")
        elif path.is_dir():
            self._paths = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not self._paths:
                raise CosaEdgeError(f"the folder holds no images ({', '.join(IMAGE_SUFFIXES)}) and no DICOM files; "
                                    "give a folder of images or a DICOM series")
            first = read_frame(self._paths[0])
            self.info = SourceInfo("folder", 10.0, first.shape[1], first.shape[0], len(self._paths), live=False)
        elif path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
            self._paths = [path]
            first = read_frame(path)
            self.info = SourceInfo("image", 1.0, first.shape[1], first.shape[0], 1, live=False)
        elif path.is_file():
            self._open_capture(str(path), "video", live=False)
        else:
            raise CosaEdgeError(f"source {spec} does not exist (give a video file, an image, a folder, a camera index "
                                "or a URL)")

    def _open_dicom(self, images: list[DicomImage], kind: str) -> None:
        sizes = sorted({(image.info.columns, image.info.rows) for image in images})
        if len(sizes) > 1:
            listed = ", ".join(f"{w}x{h}" for w, h in sizes)
            # The folder is not named: exports often name folders after the patient.
            raise CosaEdgeError(f"the series holds images of different sizes ({listed}); one annotated video needs "
                                "one size: run each instance on its own (--video FILE.dcm)")
        for image in images:  # a missing decoder is said before any output is opened, not after
            image.check_decoder()
        self._dicom = images
        self._regions = {id(image): tissue_region(image.info.regions, self._region_choice) for image in images}
        rates = [image.info.fps for image in images if image.info.fps]
        notes = [f"{image.info.name}: {warning}" for image in images for warning in image.info.warnings]
        width, height = sizes[0]
        # A series of stills has no frame rate: its annotated video shows one instance a second.
        self.info = SourceInfo(kind, rates[0] if rates else 1.0, width, height,
                               sum(image.info.frames for image in images), live=False, notes=notes)

    def region_of(self, image: DicomImage) -> tuple[Roi | None, tuple[float, float] | None]:
        """A DICOM image's 2D tissue region and its spacing (dy, dx) in mm (the region's, else Pixel Spacing)."""
        chosen = self._regions.get(id(image))
        spacing = (chosen.spacing_mm if chosen is not None else None) or image.info.pixel_spacing_mm
        return (chosen.roi if chosen is not None else None), spacing

    def _iter_dicom(self) -> Iterator[Frame]:
        index, offset = 0, 0.0
        for image in self._dicom:
            region, spacing = self.region_of(image)
            last = 0.0
            for _, timestamp, picture in image.frames():
                self.frames_read += 1
                last = timestamp
                # One clock over the series: each instance starts a frame period after the previous one ends.
                yield Frame(index, offset + timestamp, picture, instance=image.info.instance_number,
                            region=region, spacing_mm=spacing)
                index += 1
            if image.stopped_early:
                self.stopped_early = f"{image.info.name}: {image.stopped_early}"
            offset += last + 1.0 / self.info.fps

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
        if self._dicom:
            yield from self._iter_dicom()
            return
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
