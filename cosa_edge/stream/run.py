"""`cosa-edge infer`: a source through an engine into an annotated video and a JSONL file."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from .. import __version__
from ..contract import INTENDED_USE
from ..data.dicom_regions import PLAUSIBLE_SPACING_MM
from ..data.folder import IMAGE_SUFFIXES
from ..engines.base import Engine
from ..errors import CosaEdgeError
from ..presence import DEFAULT_MIN_LESION_SHARE
from ..progress import progress_bar
from .auto_roi import find_imaging_region
from .dicom_results import FrameMeasurement, write_measurement_report, write_segmentation
from .pipeline import PipelineOptions, PipelineStats, run_pipeline
from .postprocess import FrameResult, Roi
from .frame_sources import Frame, FrameSource, SourceInfo
from .writers import ImageSink, JsonlSink, VideoSink


#: ``--roi auto``: find the imaging area from this many first frames (about one to two seconds of video).
AUTO_ROI_FRAMES = 45


def parse_roi(text: str | None) -> Roi | str | None:
    """``x,y,w,h`` as a tuple, ``auto`` as the string "auto", nothing as None."""
    if not text:
        return None
    if text.strip().lower() == "auto":
        return "auto"
    try:
        x, y, w, h = (int(v) for v in text.split(","))
    except ValueError:
        raise CosaEdgeError(f"--roi {text!r} must be x,y,w,h in pixels, e.g. 80,40,640,480") from None
    if w <= 0 or h <= 0 or x < 0 or y < 0:
        raise CosaEdgeError(f"--roi {text!r} needs a positive width and height inside the frame")
    return (x, y, w, h)


def parse_pixel_spacing(text: str | None) -> tuple[float, float] | None:
    """``MM`` (square pixels) or ``DY,DX`` in millimetres per pixel, as (dy, dx)."""
    if not text:
        return None
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    low, high = PLAUSIBLE_SPACING_MM  # a tiny spacing made a lesion's chord infinitely many steps long (fuzzing)
    if len(values) not in (1, 2) or not all(low <= v <= high for v in values):
        raise CosaEdgeError(f"--pixel-spacing {text!r} must be MM or DY,DX: millimetres per pixel, e.g. 0.1 or "
                            "0.1,0.12")
    return (values[0], values[-1])


def find_roi_automatically(source_spec: str, region: int | None = None) -> Roi:
    """``--roi auto``: the imaging area of a screen capture, from its first frames (stream/auto_roi.py)."""
    frames_of = iter(FrameSource(source_spec, region=region))
    try:
        frames = [frame.image for _, frame in zip(range(AUTO_ROI_FRAMES), frames_of)]
    finally:
        frames_of.close()  # releases the capture (the source's own finally) before the real run opens it again
    return find_imaging_region(frames)


#: A pixel is lesion where the engine's lesion probability exceeds this (the engine contract).
LESION_PROBABILITY_THRESHOLD = 0.5


def source_name(spec: str, kind: str) -> str:
    """The source as the audit header names it: a file or folder name, never its path (folders can be named
    after patients), and never a stream's address (it can carry a host name and credentials)."""
    if kind == "camera":
        return f"camera {spec}"
    if kind == "stream":
        return f"{urlsplit(spec).scheme or 'network'} stream"
    return Path(spec).name


def audit_header(engine: Engine, source_spec: str, source_kind: str, settings: dict[str, Any]) -> dict[str, Any]:
    """The first line of the JSONL: which engine (by name and hash) ran, under what rules, on what, and when.

    Nothing here identifies a patient: file names only (no folders), no image content, no DICOM tags.
    """
    metadata = engine.metadata
    integrity = engine.integrity
    presence = metadata.presence or {}
    return {
        "type": "header",
        "engine": engine.path.name,
        "engine_sha256": integrity.sha256 if integrity else None,
        # False: the engine file records no hash (written before cosa-edge checked them), so it ran unverified.
        "engine_hash_verified": bool(integrity and integrity.verified),
        "backend": engine.backend,
        "cosa_edge_version": __version__,
        "intended_use": INTENDED_USE,
        "model": {"architecture": metadata.architecture, "encoder": metadata.encoder,
                  "input_size": metadata.input_size, "precision": metadata.precision},
        # What the pipeline applies: the engine's own presence threshold, else the default (said as such).
        "thresholds": {"lesion_probability": LESION_PROBABILITY_THRESHOLD,
                       "min_lesion_share": presence.get("min_lesion_share", DEFAULT_MIN_LESION_SHARE),
                       "min_lesion_share_from": "model" if "min_lesion_share" in presence else "default"},
        "calibration_temperature": (metadata.calibration or {}).get("temperature"),
        "source": source_name(source_spec, source_kind),
        "source_kind": source_kind,
        "settings": settings,
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def _checked_roi(roi: Roi | str | None, source_spec: str, region: int | None, info: SourceInfo,
                 say: Callable[[str], None]) -> Roi | None:
    """``--roi`` as x, y, w, h (found in the first frames for "auto"), refused where it starts outside the frame."""
    if roi == "auto":
        roi = find_roi_automatically(source_spec, region)
        say(f"--roi auto: the imaging area is x,y,w,h = {','.join(map(str, roi))}")
    if roi is not None and (roi[0] >= info.width or roi[1] >= info.height):
        raise CosaEdgeError(f"--roi {roi} starts outside the {info.width}x{info.height} frames of "
                            f"{source_name(source_spec, info.kind)}")
    return roi


def _close_sinks(*sinks: ImageSink | VideoSink | JsonlSink | None) -> None:
    for sink in sinks:
        if sink is not None:
            sink.close()


def infer_source(source_spec: str, engine: Engine, out: Path | None, results: Path | None, *, batch_size: int = 1,
                 roi: Roi | str | None = None, realtime: bool = False, smoothing: float = 1.0,
                 progress: bool = True, region: int | None = None, pixel_spacing_mm: tuple[float, float] | None = None,
                 keep_outside_roi: bool = False, notify: Callable[[str], None] | None = None,
                 dicom_seg: Path | None = None, dicom_sr: Path | None = None) -> PipelineStats:
    """Run ``engine`` over a source into an annotated video (``out``) and a JSONL file (``results``).

    ``roi``: x, y, w, h, or "auto" to find the imaging area of a screen capture from its first frames; without
    it, a DICOM frame's 2D tissue region (``region`` chooses among several), else the whole frame.
    ``pixel_spacing_mm`` (dy, dx) calibrates sources that carry no spacing of their own. ``notify`` receives
    one-line notes for the user (the region found, regions clamped). For a DICOM file, ``dicom_seg`` (a still)
    receives the lesion mask as a DICOM Segmentation and ``dicom_sr`` (a cine or a still) the lesion's sizes
    per frame as a TID 1500 measurement report, both referencing the source (stream/dicom_results.py).
    """
    source = FrameSource(source_spec, region=region)
    info = source.info
    archive = ArchiveResults(source, dicom_seg, dicom_sr) if dicom_seg or dicom_sr else None
    say = notify or (lambda _message: None)
    for note in info.notes:
        say(f"note: {note}")
    roi = _checked_roi(roi, source_spec, region, info, say)
    video = _video_sink(out, info) if out is not None else None
    records = None
    if results is not None:
        settings = {"roi": list(roi) if roi else None, "region": region, "batch_size": batch_size,
                    "realtime": realtime, "smoothing": smoothing,
                    "pixel_spacing_mm": list(pixel_spacing_mm) if pixel_spacing_mm else None,
                    "keep_outside_roi": keep_outside_roi}
        records = _results_sink(results, audit_header(engine, source_spec, info.kind, settings))
    bar = progress_bar(total=info.frame_count, unit="frame", desc="inferring", disable=not progress, smoothing=0.1)

    def on_result(frame: Frame, result: FrameResult, overlay: np.ndarray) -> None:
        if video is not None:
            video.write(overlay)
        if records is not None:
            records.write(result.record())
        if archive is not None:
            archive.add(frame, result)

    try:
        options = PipelineOptions(batch_size=batch_size, roi=roi, realtime=realtime, smoothing=smoothing,
                                  draw=video is not None, pixel_spacing_mm=pixel_spacing_mm,
                                  keep_outside_roi=keep_outside_roi)
        stats = run_pipeline(source, engine, on_result, options, progress=bar.update)
    finally:
        bar.close()
        # Closing renames the partial files: whatever was processed, even before an error or Ctrl-C,
        # ends up as a valid video and a complete JSONL for those frames.
        _close_sinks(video, records)
    if stats.frames_processed == 0:
        raise CosaEdgeError(f"no frame of {source_name(source_spec, info.kind)} could be processed")
    if archive is not None and not stats.interrupted:
        for written in archive.write():
            say(f"wrote {written}")
    return stats



def _video_sink(out: Path, info: Any) -> ImageSink | VideoSink:
    """The annotated output: an image for an image source written to an image name, else a video."""
    if info.kind == "image" and out.suffix.lower() in IMAGE_SUFFIXES:
        return ImageSink(out)
    return VideoSink(out, fps=info.fps, size=(info.width, info.height))


def _results_sink(results: Path, header: dict[str, Any]) -> JsonlSink:
    # Every frame record names the engine's hash too, so that a record read alone still says what made it.
    return JsonlSink(results, header=header, fields={"engine_sha256": header["engine_sha256"]})

class ArchiveResults:
    """What ``--dicom-seg`` and ``--dicom-sr`` write back for a DICOM file, gathered frame by frame."""

    def __init__(self, source: FrameSource, seg: Path | None, sr: Path | None) -> None:
        if source.info.kind != "dicom":
            raise CosaEdgeError("--dicom-seg and --dicom-sr write results for one DICOM file; give --video FILE.dcm "
                                "(a series folder: run each of its files on its own)")
        if seg is not None and source.info.frame_count != 1:
            raise CosaEdgeError(f"--dicom-seg needs a single-frame DICOM image; {Path(source.spec).name} is a cine of "
                                f"{source.info.frame_count} frames: use --dicom-sr for its lesion sizes per frame")
        self.source_path, self.seg, self.sr = Path(source.spec), seg, sr
        self.shape = (source.info.height, source.info.width)
        self.measurements: list[FrameMeasurement] = []
        self.still: tuple[Any, Any] | None = None  # (frame, result) of a single-frame source

    def add(self, frame: Any, result: Any) -> None:
        self.still = (frame, result)
        size = result.size
        if result.status == "lesion" and size is not None and size.long_axis_mm is not None:
            self.measurements.append(FrameMeasurement(frame_number=frame.index + 1, long_axis_mm=size.long_axis_mm,
                                                      short_axis_mm=size.short_axis_mm, area_mm2=size.area_mm2))

    def write(self) -> list[Path]:
        written = []
        if self.seg is not None and self.still is not None:
            _, result = self.still
            if result.status == "rejected":
                raise CosaEdgeError(f"no segmentation written: the image got no verdict ({result.reason}); "
                                    "a Segmentation would claim it was analysed")
            mask = np.zeros(self.shape, bool)
            x, y, w, h = result.roi
            mask[y:y + h, x:x + w] = result.mask
            written.append(write_segmentation(self.source_path, mask, self.seg, software_version=__version__,
                                              malignancy_score=result.malignancy_score))
        if self.sr is not None:
            if not self.measurements:
                raise CosaEdgeError("no measurement report written: no frame held a lesion with a size in mm "
                                    "(the source may be uncalibrated)")
            written.append(write_measurement_report(self.source_path, self.measurements, self.sr,
                                                    software_version=__version__))
        return written
