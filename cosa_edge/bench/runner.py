"""Measure engines side by side: per-batch latency, per-stage times, throughput, and the streaming pipeline."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..contract import CLASS_OUTPUT, LESION_OUTPUT, stack_frames
from ..data import resize_grey
from ..data.phantom import make_phantom
from ..engines.base import Engine
from ..progress import progress_bar
from ..stream.postprocess import frame_roi, summarise
from .stats import LatencySummary, summarise_latencies


@dataclass
class BenchResult:
    engine: str
    backend: str
    precision: str
    batch_size: int
    latency_ms: LatencySummary  # one batch, end to end inside the engine call
    throughput: float  # images per second
    stages_ms: dict[str, LatencySummary] = field(default_factory=dict)
    ratio_to_baseline: float | None = None
    # With --check-data: dice, miou, acc, auc, images, and agreement with the FP32 reference (bench/scores.py).
    accuracy: dict[str, Any] | None = None
    gflop_per_image: float | None = None  # counted from the model's ONNX graph (bench/flops.py)

    @property
    def gflops(self) -> float | None:
        """Achieved GFLOP/s: the model's counted operations per image times images per second."""
        return None if self.gflop_per_image is None else self.gflop_per_image * self.throughput

    def to_dict(self) -> dict[str, Any]:
        return {"engine": self.engine, "backend": self.backend, "precision": self.precision,
                "batch_size": self.batch_size, "latency_ms": self.latency_ms.to_dict(), "throughput": self.throughput,
                "stages_ms": {k: v.to_dict() for k, v in self.stages_ms.items()},
                "ratio_to_baseline": self.ratio_to_baseline,
                "gflop_per_image": self.gflop_per_image, "gflops": self.gflops, "accuracy": self.accuracy}


def bench_frames(count: int, size: tuple[int, int] = (480, 640)) -> list[np.ndarray]:
    """Phantom frames at a scanner-like resolution, so preprocessing does real resizing work."""
    return [make_phantom(1000 + i, size=size).image for i in range(count)]


def _time_one_batch(engine: Engine, raw: list[np.ndarray], samples: dict[str, list[float]]) -> None:
    """One timed call: resize (preprocess), the engine (with its own stages), post-process."""
    t0 = time.perf_counter()
    batch = stack_frames([resize_grey(f, engine.input_size) for f in raw])
    t1 = time.perf_counter()
    outputs = engine.infer(batch)
    t2 = time.perf_counter()
    for i, frame in enumerate(raw):
        summarise(i, 0.0, outputs[LESION_OUTPUT][i, 0] if LESION_OUTPUT in outputs else None,
                  outputs[CLASS_OUTPUT][i] if CLASS_OUTPUT in outputs else None, frame_roi(frame.shape, None), 0.0)
    t3 = time.perf_counter()
    samples.setdefault("total", []).append((t2 - t1) * 1e3)
    samples.setdefault("preprocess", []).append((t1 - t0) * 1e3)
    for key, value in engine.last_times.stages.items():
        samples.setdefault(key, []).append(value)
    samples.setdefault("postprocess", []).append((t3 - t2) * 1e3)


def _round_quota(total: int, rounds: int, index: int) -> int:
    """Iterations in round ``index`` when ``total`` are spread over ``rounds`` (the first rounds take the rest)."""
    return total // rounds + (1 if index < total % rounds else 0)


def bench_engines(engines: Sequence[Engine], batch_sizes: list[int], warmup: int = 5, iterations: int = 50,
                  duration: float | None = None, rounds: int = 5, settle_s: float = 0.05,
                  progress: bool = True) -> list[BenchResult]:
    """Time several engines side by side, interleaved in rounds, at each batch size.

    A shared machine's load drifts over seconds. Timing engine A for 50 iterations and then engine B
    for 50 lets that drift land on one of them and bend their ratio, so each engine's iterations are
    spread over ``rounds`` rounds and the engines take turns inside every round (the order rotates,
    so no engine always follows the same one). Before each turn the process idles ``settle_s``: the
    runtime that just ran keeps its worker threads spinning for a moment, and those would otherwise
    compete with the next engine for the same cores. ``duration`` (seconds per engine and batch size)
    replaces ``iterations``. Results come back engine by engine, batch sizes ascending.
    """
    if not engines:
        raise ValueError("no engines to measure")
    frames = bench_frames(max(batch_sizes))
    by_engine: list[list[BenchResult]] = [[] for _ in engines]
    for batch_size in batch_sizes:
        raw = frames[:batch_size]
        for engine in engines:
            engine.warmup(warmup, batch_size)
        samples: list[dict[str, list[float]]] = [{} for _ in engines]
        turns = rounds if duration else max(1, min(rounds, iterations))
        bar = progress_bar(total=None if duration else iterations * len(engines), unit="it", leave=False,
                   desc=f"batch {batch_size}: " + " vs ".join(e.path.name for e in engines), disable=not progress)
        for round_index in range(turns):
            order = [(round_index + k) % len(engines) for k in range(len(engines))]
            for position in order:
                time.sleep(settle_s)
                engine, engine_samples = engines[position], samples[position]
                if duration:
                    deadline = time.perf_counter() + duration / turns
                    while time.perf_counter() < deadline or not engine_samples:
                        _time_one_batch(engine, raw, engine_samples)
                        bar.update(1)
                else:
                    for _ in range(_round_quota(iterations, turns, round_index)):
                        _time_one_batch(engine, raw, engine_samples)
                        bar.update(1)
        bar.close()
        for position, engine in enumerate(engines):
            times = samples[position]
            summary = summarise_latencies(times.pop("total"))
            by_engine[position].append(BenchResult(
                engine=str(engine.path), backend=engine.backend, precision=engine.metadata.precision,
                batch_size=batch_size, latency_ms=summary, throughput=batch_size * 1000.0 / summary.mean,
                stages_ms={k: summarise_latencies(v) for k, v in times.items()}))
    return [result for results in by_engine for result in results]


def bench_engine(engine: Engine, batch_sizes: list[int], warmup: int = 5, iterations: int = 50,
                 duration: float | None = None, progress: bool = True) -> list[BenchResult]:
    """Time one engine alone at each batch size; stages: preprocess, the engine's own stages, postprocess."""
    return bench_engines([engine], batch_sizes, warmup, iterations, duration, rounds=1, settle_s=0.0,
                         progress=progress)


def attach_ratios(results: list[BenchResult], baseline: list[BenchResult]) -> None:
    """Median latency of each engine over the baseline's at the same batch size (below 1: faster)."""
    reference = {r.batch_size: r.latency_ms.median for r in baseline}
    for result in results:
        if result.batch_size in reference:
            result.ratio_to_baseline = result.latency_ms.median / reference[result.batch_size]


#: Engine-alone inputs for the pipeline comparison: the video's first frames, cycled (the engine's time does
#: not depend on what the frames show; a long video is never held in memory whole).
PIPELINE_INPUT_FRAMES = 32


def _engine_inputs(engine: Engine, video: str, count: int) -> list[np.ndarray]:
    """The engine's input images for the video's first ``count`` frames, prepared as the pipeline prepares them."""
    from ..stream.frame_sources import FrameSource

    inputs = []
    frames = iter(FrameSource(video))
    try:
        for frame in frames:
            inputs.append(resize_grey(frame.image, engine.input_size, frame_roi(frame.image.shape, frame.region)))
            if len(inputs) == count:
                break
    finally:
        frames.close()  # releases the capture before the pipeline opens the video again
    if not inputs:
        raise ValueError(f"{video} delivered no frame")
    return inputs


def _engine_alone_fps(engine: Engine, inputs: list[np.ndarray], frames: int, batch_size: int) -> float:
    """Frames per second of the engine called back to back over ``frames`` frames (wall clock, no pauses)."""
    calls = -(-frames // batch_size)
    batches = [stack_frames([inputs[(c * batch_size + i) % len(inputs)] for i in range(batch_size)])
               for c in range(min(calls, len(inputs)))]
    started = time.perf_counter()
    for c in range(calls):
        engine.infer(batches[c % len(batches)])
    return calls * batch_size / (time.perf_counter() - started)


def bench_pipeline(engine: Engine, video: str, batch_size: int = 1, rounds: int = 3, settle_s: float = 0.05,
                   log: list[str] | None = None, annotated_video: bool = True) -> dict[str, Any]:
    """The whole streaming path (decode, preprocess, infer, post-process, overlay, encode) against the engine alone.

    ``annotated_video=False`` measures the pipeline as a headless or archive-bound deployment runs it: the
    JSONL results only, no overlay drawn and no video encoded.

    Measured as the engines are (``bench_engines``): in ``rounds`` rounds, each timing the pipeline over the
    whole video and the engine alone over as many frames, back to back with no pauses in either, the order
    alternating from round to round and ``settle_s`` of idling before each. The ratio of each round is of two
    runs made seconds apart under the same load; the report gives their median. (Comparing one pipeline run
    with the mean of engine calls timed earlier, after pauses, let a machine's drift and its rested first
    calls land on one side only.) ``log`` receives "pipeline" and "engine" in the order they ran.
    """
    import tempfile
    from pathlib import Path

    from ..stream.run import infer_source

    if rounds < 1:
        raise ValueError("rounds must be at least 1")
    inputs = _engine_inputs(engine, video, PIPELINE_INPUT_FRAMES)
    per_round: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        def pipeline_run() -> Any:
            # Each round writes over the last: the bench keeps its figures, not the annotated video.
            return infer_source(video, engine, Path(tmp) / "bench.mp4" if annotated_video else None,
                                Path(tmp) / "bench.jsonl", batch_size=batch_size, progress=False)

        stats = None
        # Round 0 runs the pipeline first, so the engine alone always knows how many frames the video gave.
        for index in range(rounds):
            measured: dict[str, float] = {}
            for step in (("pipeline", "engine") if index % 2 == 0 else ("engine", "pipeline")):
                time.sleep(settle_s)
                if log is not None:
                    log.append(step)
                if step == "pipeline":
                    stats = pipeline_run()
                    measured["pipeline_fps"] = stats.fps
                else:
                    assert stats is not None
                    # As many frames as the pipeline gave the engine (the quality gate's rejects never reach it).
                    measured["engine_only_fps"] = _engine_alone_fps(
                        engine, inputs, max(1, stats.frames_processed - stats.frames_rejected), batch_size)
            measured["ratio"] = measured["pipeline_fps"] / measured["engine_only_fps"]
            per_round.append(measured)
    assert stats is not None
    ratios = [r["ratio"] for r in per_round]
    return {"video": video, "frames": stats.frames_processed, "frames_rejected": stats.frames_rejected,
            "batch_size": batch_size, "annotated_video": annotated_video,
            "fps": float(np.median([r["pipeline_fps"] for r in per_round])),
            "engine_only_fps": float(np.median([r["engine_only_fps"] for r in per_round])),
            "ratio": float(np.median(ratios)), "ratio_range": [min(ratios), max(ratios)], "rounds": per_round,
            # Latency and stage times of the last pipeline run.
            "latency_ms": summarise_latencies(stats.latencies_ms).to_dict(),
            "stage_median_ms": {k: float(np.median(v)) for k, v in stats.stage_ms.items() if v}}

