"""`cosa-edge infer`: a source through an engine into an annotated video and a JSONL file."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tqdm import tqdm

from .. import __version__
from ..contract import INTENDED_USE
from ..data.folder import IMAGE_SUFFIXES
from ..engines.base import Engine
from ..errors import CosaEdgeError
from ..presence import DEFAULT_MIN_LESION_SHARE
from .pipeline import PipelineStats, run_pipeline
from .postprocess import Roi
from .sources import FrameSource
from .writers import ImageSink, JsonlSink, VideoSink


def parse_roi(text: str | None) -> Roi | None:
    if not text:
        return None
    try:
        x, y, w, h = (int(v) for v in text.split(","))
    except ValueError:
        raise CosaEdgeError(f"--roi {text!r} must be x,y,w,h in pixels, e.g. 80,40,640,480") from None
    if w <= 0 or h <= 0 or x < 0 or y < 0:
        raise CosaEdgeError(f"--roi {text!r} needs a positive width and height inside the frame")
    return (x, y, w, h)


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


def infer_source(source_spec: str, engine: Engine, out: Path | None, results: Path | None, *, batch_size: int = 1,
                 roi: Roi | None = None, realtime: bool = False, smoothing: float = 1.0,
                 progress: bool = True) -> PipelineStats:
    source = FrameSource(source_spec)
    info = source.info
    if roi is not None and (roi[0] >= info.width or roi[1] >= info.height):
        raise CosaEdgeError(f"--roi {roi} starts outside the {info.width}x{info.height} frames of {source_spec}")
    video = None
    if out is not None:
        if info.kind == "image" and out.suffix.lower() in IMAGE_SUFFIXES:
            video = ImageSink(out)
        else:
            video = VideoSink(out, fps=info.fps, size=(info.width, info.height))
    records = None
    if results is not None:
        settings = {"roi": list(roi) if roi else None, "batch_size": batch_size, "realtime": realtime,
                    "smoothing": smoothing}
        header = audit_header(engine, source_spec, info.kind, settings)
        # Every frame record names the engine's hash too, so that a record read alone still says what made it.
        records = JsonlSink(results, header=header, fields={"engine_sha256": header["engine_sha256"]})
    bar = tqdm(total=info.frame_count, unit="frame", desc="inferring", disable=not progress, smoothing=0.1)

    def on_result(frame, result, overlay) -> None:  # noqa: ANN001
        if video is not None:
            video.write(overlay)
        if records is not None:
            records.write(result.record())

    try:
        stats = run_pipeline(source, engine, on_result, batch_size=batch_size, roi=roi, realtime=realtime,
                             smoothing=smoothing, draw=video is not None, progress=bar.update)
    finally:
        bar.close()
        # Closing renames the partial files: whatever was processed, even before an error or Ctrl-C,
        # ends up as a valid video and a complete JSONL for those frames.
        if video is not None:
            video.close()
        if records is not None:
            records.close()
    if stats.frames_processed == 0:
        raise CosaEdgeError(f"no frame of {source_spec} could be processed")
    return stats
