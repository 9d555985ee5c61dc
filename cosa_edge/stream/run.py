"""`cosa-edge infer`: a source through an engine into an annotated video and a JSONL file."""

from __future__ import annotations

from pathlib import Path

from tqdm import tqdm

from ..data.folder import IMAGE_SUFFIXES
from ..engines.base import Engine
from ..errors import CosaEdgeError
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
    records = JsonlSink(results) if results is not None else None
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
