"""Measure engines side by side: per-batch latency, per-stage times, throughput, and the streaming pipeline."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from tqdm import tqdm

from ..data import resize_grey
from ..data.phantom import make_phantom
from ..engines.base import Engine
from ..engines.metadata import CLASS_OUTPUT, LESION_OUTPUT
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

    def to_dict(self) -> dict[str, Any]:
        return {"engine": self.engine, "backend": self.backend, "precision": self.precision,
                "batch_size": self.batch_size, "latency_ms": self.latency_ms.to_dict(), "throughput": self.throughput,
                "stages_ms": {k: v.to_dict() for k, v in self.stages_ms.items()}, "ratio_to_baseline": self.ratio_to_baseline}


def bench_frames(count: int, size: tuple[int, int] = (480, 640)) -> list[np.ndarray]:
    """Phantom frames at a scanner-like resolution, so preprocessing does real resizing work."""
    return [make_phantom(1000 + i, size=size).image for i in range(count)]


def bench_engine(engine: Engine, batch_sizes: list[int], warmup: int = 5, iterations: int = 50,
                 duration: float | None = None, progress: bool = True) -> list[BenchResult]:
    """Time ``engine`` at each batch size; stages: preprocess, the engine's own stages, postprocess."""
    frames = bench_frames(max(batch_sizes))
    size = engine.input_size
    results = []
    for batch_size in batch_sizes:
        raw = frames[:batch_size]
        engine.warmup(warmup, batch_size)
        totals, stages = [], {"preprocess": [], "postprocess": []}
        engine_stages: dict[str, list[float]] = {}
        deadline = time.perf_counter() + duration if duration else None
        bar = tqdm(total=None if deadline else iterations, desc=f"{engine.path.name} batch {batch_size}", unit="it",
                   leave=False, disable=not progress)
        while (deadline and time.perf_counter() < deadline) or (not deadline and len(totals) < iterations):
            t0 = time.perf_counter()
            batch = np.stack([resize_grey(f, size) for f in raw]).astype(np.float32)[:, None]
            t1 = time.perf_counter()
            outputs = engine.infer(batch)
            t2 = time.perf_counter()
            for i, frame in enumerate(raw):
                region = frame_roi(frame.shape, None)
                summarise(i, 0.0, outputs[LESION_OUTPUT][i, 0] if LESION_OUTPUT in outputs else None,
                          outputs[CLASS_OUTPUT][i] if CLASS_OUTPUT in outputs else None, region, 0.0)
            t3 = time.perf_counter()
            totals.append((t2 - t1) * 1e3)
            stages["preprocess"].append((t1 - t0) * 1e3)
            stages["postprocess"].append((t3 - t2) * 1e3)
            for key, value in engine.last_times.stages.items():
                engine_stages.setdefault(key, []).append(value)
            bar.update(1)
        bar.close()
        summary = summarise_latencies(totals)
        stage_summaries = {"preprocess": summarise_latencies(stages["preprocess"]),
                           **{k: summarise_latencies(v) for k, v in engine_stages.items()},
                           "postprocess": summarise_latencies(stages["postprocess"])}
        results.append(BenchResult(engine=str(engine.path), backend=engine.backend, precision=engine.metadata.precision,
                                   batch_size=batch_size, latency_ms=summary,
                                   throughput=batch_size * 1000.0 / summary.mean, stages_ms=stage_summaries))
    return results


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
    return {"video": video, "frames": stats.frames_processed, "fps": stats.fps, "engine_only_fps": engine_only_fps,
            "latency_ms": summarise_latencies(stats.latencies_ms).to_dict(),
            "stage_median_ms": {k: float(np.median(v)) for k, v in stats.stage_ms.items() if v}}
