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


@dataclass(frozen=True)
class PipelineOptions:
    """How the pipeline runs; fixed for the whole run.

    ``roi`` (x, y, w, h) is the region analysed; without it, a DICOM frame's 2D tissue region, else the whole
    frame. ``pixel_spacing_mm`` (dy, dx) calibrates sources whose frames carry no spacing of their own (a DICOM
    region's or Pixel Spacing comes first). ``quality_gate``: frames the model was not made for (blank, frozen,
    colour; out of distribution where the engine scores it) get status "rejected" with a reason and no verdict
    (stream/quality.py). Overlays blank what lies outside a region in force (scanners burn the patient's name
    into the header bar) unless ``keep_outside_roi``; ``draw`` False skips the overlays (nothing shows them).
    """

    batch_size: int = 1
    roi: Roi | None = None
    realtime: bool = False
    smoothing: float = 1.0  # exponential smoothing of the class probability over frames (1: off)
    queue_size: int = 8  # results waiting for post-processing, at most
    draw: bool = True
    quality_gate: bool = True
    pixel_spacing_mm: tuple[float, float] | None = None
    keep_outside_roi: bool = False


@dataclass(frozen=True)
class PreparedFrame:
    """A frame with its region and the quality gate's verdict; the engine's input where the gate accepted it."""

    frame: Frame
    region: Roi
    engine_input: np.ndarray | None  # the resized grey region; None for a rejected frame
    rejected: str | None  # why the gate rejected the frame, or None


@dataclass(frozen=True)
class InferredFrame:
    """A frame with the engine's answers for it (all None for a rejected frame)."""

    frame: Frame
    region: Roi
    lesion: np.ndarray | None  # (S, S) lesion probability
    classes: np.ndarray | None  # (2,) class probabilities
    ood_score: float | None
    rejected: str | None


def run_pipeline(source: FrameSource, engine: Engine, on_result: Callable[[Frame, FrameResult, np.ndarray], None],
                 options: PipelineOptions = PipelineOptions(),  # frozen: one shared default is safe
                 progress: Callable[[int], None] | None = None) -> PipelineStats:
    """Run ``engine`` over every frame of ``source``; ``on_result(frame, result, overlay)`` gets each in order,
    in the caller's thread (so that Ctrl-C lands there); ``progress(1)`` is called after each."""
    return _Pipeline(source, engine, options).run(on_result, progress)


class _Pipeline:
    """One run's stages and the state they share: the queues between them, the stop signal, the statistics."""

    def __init__(self, source: FrameSource, engine: Engine, options: PipelineOptions) -> None:
        self.source, self.engine, self.options = source, engine, options
        self.stats = PipelineStats()
        self.stop, self.errors = threading.Event(), []
        # Real time only: two frames at most wait between the reader and the engine, so latency stays bounded.
        self.decoded: queue.Queue = queue.Queue(maxsize=2)
        self.prepared: queue.Queue = queue.Queue(maxsize=2)
        self.inferred: queue.Queue = queue.Queue(maxsize=options.queue_size)
        self.gate = QualityGate(live=source.info.live) if options.quality_gate else None

    # ----------------------------------------------------------------------------------------------------------
    # Reading and preparing

    def prepare(self, frame: Frame) -> PreparedFrame:
        """The region, the quality gate's verdict, and (for an accepted frame) the engine's input image."""
        t0 = time.perf_counter()
        region = frame_roi(frame.image.shape, self.options.roi if self.options.roi is not None else frame.region)
        rejected = self.gate.check(frame.image, region) if self.gate is not None else None
        grey = resize_grey(frame.image, self.engine.input_size, region) if rejected is None else None
        self.stats.stage_ms["preprocess"].append((time.perf_counter() - t0) * 1e3)
        return PreparedFrame(frame, region, grey, rejected)

    def read(self) -> None:
        """Real time: its own thread, at the source's pace; the stalest waiting frame makes room for the newest."""
        started = time.perf_counter()
        frame_period = 1.0 / self.source.info.fps if not self.source.info.live else 0.0
        for frame in self.source:
            if self.stop.is_set():
                break
            self.stats.frames_read += 1
            if frame_period:  # deliver a file as a probe would: at its own frame rate
                time.sleep(max(0.0, started + frame.index * frame_period - time.perf_counter()))
                frame.captured_at = time.perf_counter()
            while True:
                try:
                    self.decoded.put_nowait(frame)
                    break
                except queue.Full:
                    try:
                        self.decoded.get_nowait()
                        self.stats.frames_skipped += 1
                    except queue.Empty:
                        pass
        self.stats.stopped_early = self.source.stopped_early
        _put(self.decoded, _END, self.stop)

    def preprocess(self) -> None:
        """Real time: its own thread, between the reader and the engine."""
        while (frame := _get(self.decoded, self.stop)) is not _END:
            if not _put(self.prepared, self.prepare(frame), self.stop):
                return
        _put(self.prepared, _END, self.stop)

    def read_inline(self) -> Iterator[PreparedFrame]:
        """Offline: decode and prepare in the inference thread, one frame when it is asked for."""
        frames = iter(self.source)
        try:
            while True:
                t0 = time.perf_counter()
                frame = next(frames, None)
                if frame is None or self.stop.is_set():
                    break
                self.stats.stage_ms["decode"].append((time.perf_counter() - t0) * 1e3)
                self.stats.frames_read += 1
                yield self.prepare(frame)
        finally:
            frames.close()  # the source's own clean-up (the capture released) runs now, not at garbage collection
        self.stats.stopped_early = self.source.stopped_early

    # ----------------------------------------------------------------------------------------------------------
    # Inference

    def _item_readers(self) -> tuple[Callable[[], Any], Callable[[], Any]]:
        """(next item, waiting item): the next prepared frame (or _END), and a frame that is already waiting
        (None when none is; offline every frame is "waiting", read when asked for)."""
        if self.options.realtime:
            def waiting_item() -> Any:  # what is already waiting, never waiting for more
                try:
                    return self.prepared.get_nowait()
                except queue.Empty:
                    return None
            return (lambda: _get(self.prepared, self.stop)), waiting_item
        inline = self.read_inline()
        return (lambda: next(inline, _END)), (lambda: next(inline, _END))

    def infer(self) -> None:
        """Batch accepted frames (never waiting to fill a batch) and run the engine; a rejected frame ends the
        batch and follows it, in order."""
        next_item, waiting_item = self._item_readers()
        finished = False
        while not finished:
            item = next_item()
            if item is _END:
                break
            batch, held = [item], None
            while len(batch) < self.options.batch_size and batch[-1].rejected is None:
                following = waiting_item()
                if following is None:
                    break
                if following is _END:
                    finished = True
                    break
                if following.rejected is not None:
                    held = following
                    break
                batch.append(following)
            if not self.infer_batch(batch) or (held is not None and not self.infer_batch([held])):
                return
        _put(self.inferred, _END, self.stop)

    def infer_batch(self, batch: list[PreparedFrame]) -> bool:
        """Run the engine on the batch's accepted frames (a rejected frame is passed on without it)."""
        outputs: dict[str, np.ndarray] = {}
        if batch[0].rejected is None:
            t0 = time.perf_counter()
            outputs = self.engine.infer(stack_frames([item.engine_input for item in batch]))
            self.stats.stage_ms["inference"].append((time.perf_counter() - t0) * 1e3 / len(batch))
        for i, item in enumerate(batch):
            values = {name: outputs[name][i] for name in outputs}
            lesion = values[LESION_OUTPUT][0] if LESION_OUTPUT in values else None
            ood = float(np.ravel(values[OOD_OUTPUT])[0]) if OOD_OUTPUT in values else None
            inferred = InferredFrame(item.frame, item.region, lesion, values.get(CLASS_OUTPUT), ood, item.rejected)
            if not _put(self.inferred, inferred, self.stop):
                return False
        return True

    # ----------------------------------------------------------------------------------------------------------
    # The run, with post-processing in the caller's thread

    def run(self, on_result: Callable[[Frame, FrameResult, np.ndarray], None],
            progress: Callable[[int], None] | None) -> PipelineStats:
        stages = [_Stage("inference", self.infer, self.errors, self.stop)]
        if self.options.realtime:
            stages += [_Stage("reader", self.read, self.errors, self.stop),
                       _Stage("preprocess", self.preprocess, self.errors, self.stop)]
        started = time.perf_counter()
        for stage in stages:
            stage.start()
        try:
            self.post_process(on_result, progress)
        except KeyboardInterrupt:
            self.stats.interrupted = True
        finally:
            self.stop.set()
            for stage in stages:
                stage.join(timeout=5)
            self.stats.seconds = time.perf_counter() - started
        if self.errors:
            raise self.errors[0]
        return self.stats

    def post_process(self, on_result: Callable[[Frame, FrameResult, np.ndarray], None],
                     progress: Callable[[int], None] | None) -> None:
        """Summarise, draw and hand on every inferred frame, in order, until the end or a stage's error."""
        options, stats = self.options, self.stats
        metadata = self.engine.metadata
        smoother = ProbabilitySmoother(options.smoothing) if options.smoothing < 1.0 else None
        # The engine's own presence threshold (chosen on its validation data), else the default.
        min_lesion_share = float(metadata.presence.get("min_lesion_share", DEFAULT_MIN_LESION_SHARE))
        # Its out-of-distribution threshold, where the engine computes the score (chosen on validation data).
        ood_threshold = metadata.ood.get("threshold") if metadata.ood else None
        fps_window: list[float] = []
        instance: int | None = None
        while (item := _get(self.inferred, self.stop)) is not _END:
            if self.errors:
                break
            frame = item.frame
            t0 = time.perf_counter()
            latency = (time.perf_counter() - frame.captured_at) * 1e3
            if smoother is not None and frame.instance != instance:
                smoother.reset()  # each instance of a series is its own clip: no verdict carries over
            instance = frame.instance
            result = summarise(frame.index, frame.timestamp, item.lesion, item.classes, item.region, latency,
                               smoother, min_lesion_share, rejected=item.rejected, ood_score=item.ood_score,
                               ood_threshold=ood_threshold, spacing_mm=frame.spacing_mm or options.pixel_spacing_mm,
                               instance=frame.instance)
            now = time.perf_counter()
            fps_window = [t for t in fps_window if now - t < 1.0] + [now]
            blank = not options.keep_outside_roi and (options.roi is not None or frame.region is not None)
            overlay = (draw_overlay(frame.image, result, item.region, fps=len(fps_window), blank_outside=blank)
                       if options.draw else frame.image)
            on_result(frame, result, overlay)
            stats.stage_ms["postprocess"].append((time.perf_counter() - t0) * 1e3)
            stats.latencies_ms.append(latency)
            stats.frames_processed += 1
            stats.frames_rejected += item.rejected is not None
            if progress is not None:
                progress(1)
