"""The pipelined inference loop: decode, preprocess, infer, post-process and encode overlap.

Real time:

    reader ──q──> preprocess ──q──> inference (batched) ──q──> post-process + overlay + writers

Each stage is a thread joined to the next by a bounded queue, so a slow stage
holds the others back by at most a queue's length and memory stays bounded.
OpenCV, numpy and the runtimes release the GIL in their heavy calls, which is
what lets the stages run at the same time.

Offline (default): every frame is processed, in order, and decoding and
preprocessing run in the inference thread, between engine calls:

    inference thread: decode, preprocess, infer (batched) ──q──> post-process + overlay + writers

On a CPU the engine's runtime already keeps every core busy inside each call, and a
decode thread running beside it preempts one of the runtime's workers, which the others
then wait for at the end of every parallel operator: on the 2-core CPU that cost more
than decoding itself (docs/deployment.md). Between calls the cores are free anyway.

Real time (``realtime``): a file is read at its own frame rate as a probe would deliver
it, by its own reader thread (the probe does not wait for the engine), and when the
engine falls behind, the reader drops the oldest waiting frame instead of queueing it,
so latency stays bounded; dropped frames are counted.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..contract import CLASS_OUTPUT, LESION_OUTPUT, OOD_OUTPUT, stack_frames
from ..data import resize_grey
from ..engines.base import Engine
from ..presence import DEFAULT_MIN_LESION_SHARE
from .overlay import draw_overlay
from .postprocess import FrameResult, ProbabilitySmoother, Roi, frame_roi, summarise
from .quality import QualityGate
from .frame_sources import Frame, FrameSource

_END = object()


@dataclass
class PipelineStats:
    frames_read: int = 0
    frames_processed: int = 0
    frames_skipped: int = 0
    frames_rejected: int = 0  # by the quality gate: processed, but never given to the engine
    seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    # decode: offline only (in real time the reader thread waits for the source's own pace).
    stage_ms: dict[str, list[float]] = field(
        default_factory=lambda: {"decode": [], "preprocess": [], "inference": [], "postprocess": []})
    stopped_early: str | None = None
    interrupted: bool = False

    @property
    def fps(self) -> float:
        return self.frames_processed / self.seconds if self.seconds else 0.0


class _Stage(threading.Thread):
    def __init__(self, name: str, target: Callable[[], None], errors: list[BaseException],
                 stop: threading.Event) -> None:
        super().__init__(name=name, daemon=True)
        self._work, self._errors, self._halt = target, errors, stop

    def run(self) -> None:
        try:
            self._work()
        except BaseException as exc:  # re-raised in the caller's thread
            self._errors.append(exc)
            # Stop every stage: the caller may already be waiting for a result this stage will never send
            # (it hung there when the engine failed after the last result had been taken).
            self._halt.set()


def _put(q: queue.Queue, item: Any, stop: threading.Event) -> bool:
    while not stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def _get(q: queue.Queue, stop: threading.Event) -> Any:
    while True:
        try:
            return q.get(timeout=0.1)
        except queue.Empty:
            if stop.is_set():
                return _END


def run_pipeline(source: FrameSource, engine: Engine, on_result: Callable[[Frame, FrameResult, np.ndarray], None], *,
                 batch_size: int = 1, roi: Roi | None = None, realtime: bool = False, smoothing: float = 1.0,
                 queue_size: int = 8, draw: bool = True, progress: Callable[[int], None] | None = None,
                 quality_gate: bool = True, pixel_spacing_mm: tuple[float, float] | None = None,
                 keep_outside_roi: bool = False) -> PipelineStats:
    """Run ``engine`` over every frame of ``source``; ``on_result(frame, result, overlay)`` gets each in order.

    ``roi`` (x, y, w, h) is the region analysed; without it, a DICOM frame's 2D tissue region, else the whole
    frame. ``pixel_spacing_mm`` (dy, dx) calibrates sources whose frames carry no spacing of their own (a DICOM
    region's or Pixel Spacing comes first). ``quality_gate``: frames the model was not made for (blank, frozen,
    colour; out of distribution where the engine scores it) get status "rejected" with a reason and no verdict
    (stream/quality.py). Overlays blank what lies outside a region in force (scanners burn the patient's name
    into the header bar) unless ``keep_outside_roi``.
    """
    stats = PipelineStats()
    stop, errors = threading.Event(), []
    # Real time only: two frames at most wait between the reader and the engine, so latency stays bounded.
    decoded: queue.Queue = queue.Queue(maxsize=2)
    prepared: queue.Queue = queue.Queue(maxsize=2)
    inferred: queue.Queue = queue.Queue(maxsize=queue_size)
    size = engine.input_size
    smoother = ProbabilitySmoother(smoothing) if smoothing < 1.0 else None
    # The engine's own presence threshold (chosen on its validation data), else the default.
    min_lesion_share = float(engine.metadata.presence.get("min_lesion_share", DEFAULT_MIN_LESION_SHARE))
    # Its out-of-distribution threshold, where the engine computes the score (chosen on validation data).
    ood_threshold = engine.metadata.ood.get("threshold") if engine.metadata.ood else None
    gate = QualityGate(live=source.info.live) if quality_gate else None
    fps_window: list[float] = []

    def prepare(frame: Frame) -> tuple[Frame, Roi, np.ndarray | None, str | None]:
        """The region, the quality gate's verdict, and (for an accepted frame) the engine's input image."""
        t0 = time.perf_counter()
        region = frame_roi(frame.image.shape, roi if roi is not None else frame.region)
        rejected = gate.check(frame.image, region) if gate is not None else None
        grey = resize_grey(frame.image, size, region) if rejected is None else None
        stats.stage_ms["preprocess"].append((time.perf_counter() - t0) * 1e3)
        return frame, region, grey, rejected

    def read() -> None:  # real time: its own thread, at the source's pace
        started = time.perf_counter()
        frame_period = 1.0 / source.info.fps if not source.info.live else 0.0
        for frame in source:
            if stop.is_set():
                break
            stats.frames_read += 1
            if frame_period:  # deliver a file as a probe would: at its own frame rate
                time.sleep(max(0.0, started + frame.index * frame_period - time.perf_counter()))
                frame.captured_at = time.perf_counter()
            while True:
                try:
                    decoded.put_nowait(frame)
                    break
                except queue.Full:
                    try:
                        decoded.get_nowait()  # the stalest waiting frame makes room for the newest
                        stats.frames_skipped += 1
                    except queue.Empty:
                        pass
        stats.stopped_early = source.stopped_early
        _put(decoded, _END, stop)

    def preprocess() -> None:  # real time: its own thread
        while (frame := _get(decoded, stop)) is not _END:
            if not _put(prepared, prepare(frame), stop):
                return
        _put(prepared, _END, stop)

    def read_inline() -> Iterator[tuple[Frame, Roi, np.ndarray | None, str | None]]:
        """Offline: decode and prepare in the inference thread, one frame when it is asked for."""
        frames = iter(source)
        try:
            while True:
                t0 = time.perf_counter()
                frame = next(frames, None)
                if frame is None or stop.is_set():
                    break
                stats.stage_ms["decode"].append((time.perf_counter() - t0) * 1e3)
                stats.frames_read += 1
                yield prepare(frame)
        finally:
            frames.close()  # the source's own clean-up (the capture released) runs now, not at garbage collection
        stats.stopped_early = source.stopped_early

    def infer() -> None:
        if realtime:
            def next_item() -> Any:
                return _get(prepared, stop)

            def waiting_item() -> Any:  # what is already waiting, never waiting for more
                try:
                    return prepared.get_nowait()
                except queue.Empty:
                    return None
        else:
            inline = read_inline()

            def next_item() -> Any:
                return next(inline, _END)
            waiting_item = next_item
        finished = False
        while not finished:
            item = next_item()
            if item is _END:
                break
            batch, held = [item], None
            while len(batch) < batch_size and batch[-1][3] is None:
                nxt = waiting_item()
                if nxt is None:
                    break
                if nxt is _END:
                    finished = True
                    break
                if nxt[3] is not None:  # a rejected frame ends the batch; it follows the batch, in order
                    held = nxt
                    break
                batch.append(nxt)
            if not _infer_batch(batch) or (held is not None and not _infer_batch([held])):
                return
        _put(inferred, _END, stop)

    def _infer_batch(batch: list[tuple[Frame, Roi, np.ndarray | None, str | None]]) -> bool:
        """Run the engine on the batch's accepted frames (a rejected frame is passed on without it)."""
        outputs: dict[str, np.ndarray] = {}
        if batch[0][3] is None:
            t0 = time.perf_counter()
            outputs = engine.infer(stack_frames([g for _, _, g, _ in batch]))
            stats.stage_ms["inference"].append((time.perf_counter() - t0) * 1e3 / len(batch))
        for i, (frame, region, _, rejected) in enumerate(batch):
            values = {name: outputs[name][i] for name in outputs}
            lesion = values[LESION_OUTPUT][0] if LESION_OUTPUT in values else None
            ood = float(np.ravel(values[OOD_OUTPUT])[0]) if OOD_OUTPUT in values else None
            if not _put(inferred, (frame, region, lesion, values.get(CLASS_OUTPUT), ood, rejected), stop):
                return False
        return True

    stages = [_Stage("inference", infer, errors, stop)]
    if realtime:
        stages += [_Stage("reader", read, errors, stop), _Stage("preprocess", preprocess, errors, stop)]
    started = time.perf_counter()
    for stage in stages:
        stage.start()
    instance: int | None = None
    try:
        # Post-processing, overlay and writing run here, in the caller's thread, so Ctrl-C lands here.
        while (item := _get(inferred, stop)) is not _END:
            if errors:
                break
            frame, region, lesion, classes, ood, rejected = item
            t0 = time.perf_counter()
            latency = (time.perf_counter() - frame.captured_at) * 1e3
            if smoother is not None and frame.instance != instance:
                smoother.reset()  # each instance of a series is its own clip: no verdict carries over
            instance = frame.instance
            result = summarise(frame.index, frame.timestamp, lesion, classes, region, latency, smoother,
                               min_lesion_share, rejected=rejected, ood_score=ood, ood_threshold=ood_threshold,
                               spacing_mm=frame.spacing_mm or pixel_spacing_mm, instance=frame.instance)
            now = time.perf_counter()
            fps_window = [t for t in fps_window if now - t < 1.0] + [now]
            blank = not keep_outside_roi and (roi is not None or frame.region is not None)
            overlay = (draw_overlay(frame.image, result, region, fps=len(fps_window), blank_outside=blank)
                       if draw else frame.image)
            on_result(frame, result, overlay)
            stats.stage_ms["postprocess"].append((time.perf_counter() - t0) * 1e3)
            stats.latencies_ms.append(latency)
            stats.frames_processed += 1
            stats.frames_rejected += rejected is not None
            if progress is not None:
                progress(1)
    except KeyboardInterrupt:
        stats.interrupted = True
    finally:
        stop.set()
        for stage in stages:
            stage.join(timeout=5)
        stats.seconds = time.perf_counter() - started
    if errors:
        raise errors[0]
    return stats
