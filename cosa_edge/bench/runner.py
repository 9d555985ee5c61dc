"""Measure engines side by side: per-batch latency, per-stage times, throughput, and the streaming pipeline."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from tqdm import tqdm

from ..contract import CLASS_OUTPUT, LESION_OUTPUT, stack_frames
from ..data import resize_grey
from ..data.phantom import make_phantom
from ..engines.base import Engine
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
    # With --check-data: dice, miou, acc, auc, images, and agreement with the FP32 reference (bench/accuracy.py).
    accuracy: dict[str, Any] | None = None
    gflop_per_image: float | None = None  # counted from the model's ONNX graph (bench/flops.py)

    @property
    def gflops(self) -> float | None:
        """Achieved GFLOP/s: the model's counted operations per image times images per second."""
        return None if self.gflop_per_image is None else self.gflop_per_image * self.throughput

    def to_dict(self) -> dict[str, Any]:
        return {"engine": self.engine, "backend": self.backend, "precision": self.precision,
                "batch_size": self.batch_size, "latency_ms": self.latency_ms.to_dict(), "throughput": self.throughput,
                "stages_ms": {k: v.to_dict() for k, v in self.stages_ms.items()}, "ratio_to_baseline": self.ratio_to_baseline,
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
        bar = tqdm(total=None if duration else iterations * len(engines), unit="it", leave=False,
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


def bench_pipeline(engine: Engine, video: str, engine_only_fps: float, batch_size: int = 1) -> dict[str, Any]:
    """The whole streaming path (decode, preprocess, infer, post-process, overlay, encode) on a video."""
    import tempfile
    from pathlib import Path

    from ..stream.run import infer_source

    with tempfile.TemporaryDirectory() as tmp:
        stats = infer_source(video, engine, Path(tmp) / "bench.mp4", Path(tmp) / "bench.jsonl",
                             batch_size=batch_size, progress=False)
    return {"video": video, "frames": stats.frames_processed, "batch_size": batch_size, "fps": stats.fps,
            "engine_only_fps": engine_only_fps,
            "latency_ms": summarise_latencies(stats.latencies_ms).to_dict(),
            "stage_median_ms": {k: float(np.median(v)) for k, v in stats.stage_ms.items() if v}}
