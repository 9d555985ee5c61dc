"""One `cosa-edge bench` run from start to report: engines side by side (with the pipeline and accuracy where asked),
or a Triton server under load beside the engine it serves.

Engines are opened by the caller's ``open_engine`` (cosa_edge.backends.open_engine for the command line, which also
opens a PyTorch checkpoint as the baseline): the runtime side never imports the training side itself.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..contract import stack_frames
from ..data import load_dataset, resize_grey
from ..data.splits import fold_part, parse_split
from ..engines.base import Engine
from ..errors import CosaEdgeError
from .load import WARMUP_S, load_test, parse_concurrency
from .load_report import write_load_report
from .report import write_report
from .runner import attach_ratios, bench_engines, bench_frames, bench_pipeline
from .scores import attach_accuracy
from .system import system_info

#: open_engine(path, backend=None, threads=None) -> an engine to enter as a context manager.
EngineOpener = Callable[..., Any]


@dataclass(frozen=True)
class LocalBench:
    """Engines measured side by side, interleaved in rounds; optionally the pipeline on a video and accuracy."""

    engines: tuple[str, ...]
    report_dir: Path
    batch_sizes: tuple[int, ...] = (1,)
    baseline: str | None = None  # a checkpoint, run as PyTorch eager FP32
    baseline_backend: str | None = None  # the backend that opens ``baseline`` (the command line names PyTorch's)
    warmup: int = 5
    iterations: int = 50
    duration: float | None = None
    rounds: int = 5
    threads: int | None = None
    video: str | None = None
    annotated_video: bool = True
    check_data: str | None = None
    split: str | None = None  # FOLDS.json:K: score only fold K's test images of check_data


@dataclass(frozen=True)
class ServerBench:
    """A Triton server load-tested at several concurrencies, beside the served engine alone (where given)."""

    server: str
    model_name: str
    report_dir: Path
    concurrency: str = "1,4,16"
    tls_ca: Path | None = None
    engine: str | None = None
    duration: float = 10.0
    warmup: int = 5
    iterations: int = 50
    threads: int | None = None


def parse_batch_sizes(text: str) -> tuple[int, ...]:
    """'1,4,8' -> (1, 4, 8), sorted and without repeats."""
    try:
        sizes = sorted({int(b) for b in text.split(",")})
    except ValueError:
        raise CosaEdgeError(f"--batch {text!r} must list integers, e.g. 1,4,8") from None
    if min(sizes) < 1:
        raise CosaEdgeError("batch sizes must be at least 1")
    return tuple(sizes)


def _check_samples(plan: LocalBench, size: int) -> list[Any] | None:
    if not plan.check_data:
        return None
    samples = load_dataset(plan.check_data, progress=False, phantom_size=size,
                           include_normal=plan.check_data.startswith("busi:"))
    return fold_part(samples, *parse_split(plan.split), "test") if plan.split else samples


def run_local_bench(plan: LocalBench, open_engine: EngineOpener) -> list[Path]:
    """Measure, score and report; returns the report's files."""
    batch_sizes = list(plan.batch_sizes)
    with ExitStack() as stack:
        opened: list[Engine] = []
        if plan.baseline:
            opened.append(stack.enter_context(open_engine(plan.baseline, backend=plan.baseline_backend,
                                                          threads=plan.threads)))
        opened += [stack.enter_context(open_engine(path, threads=plan.threads)) for path in plan.engines]
        results = bench_engines(opened, batch_sizes, plan.warmup, plan.iterations, plan.duration, rounds=plan.rounds)
        # Scored after timing: scoring would otherwise warm one engine's caches before another's.
        attach_accuracy(results, opened, _check_samples(plan, opened[0].input_size))
        baseline_results = [r for r in results if r.engine == str(opened[0].path) and r.backend == opened[0].backend]
        pipeline = None
        if plan.video:
            measured = opened[1] if plan.baseline else opened[0]
            pipeline = bench_pipeline(measured, plan.video, batch_size=batch_sizes[0], rounds=plan.rounds,
                                      annotated_video=plan.annotated_video)
    attach_ratios(results, baseline_results)
    method = {"warmup": plan.warmup, "iterations": None if plan.duration else plan.iterations,
              "duration": plan.duration, "rounds": plan.rounds if len(opened) > 1 else 1,
              "batch_sizes": batch_sizes, "threads": plan.threads}
    baseline_name = (Path(plan.baseline).name + " (PyTorch eager FP32)" if plan.baseline
                     else Path(results[0].engine).name)
    return write_report(results, plan.report_dir, system_info(), pipeline, method=method, baseline_name=baseline_name)


def run_server_bench(plan: ServerBench, open_engine: EngineOpener) -> list[Path]:
    """The load test (bench/load.py), then the served engine measured alone; returns the report's files."""
    from ..serve.client import TritonServerEngine

    levels = parse_concurrency(plan.concurrency)
    with ExitStack() as stack:
        remote = stack.enter_context(TritonServerEngine(plan.server, plan.model_name, plan.tls_ca))
        engine = None
        if plan.engine:
            engine = stack.enter_context(open_engine(plan.engine, threads=plan.threads))
            if engine.metadata.graph_sha256 != remote.metadata.graph_sha256:
                raise CosaEdgeError(f"{Path(plan.engine).name} is not the engine the server serves (their graph hashes "
                                    "differ); give the served engine, or leave out --engine")
        frames = stack_frames([resize_grey(f, remote.input_size) for f in bench_frames(16)])
        load = load_test(remote, frames, levels, duration_s=plan.duration)
        described = {"address": remote.address, "model": remote.model, "description": remote.describe(),
                     "max_batch_size": remote.max_batch_size}
        # After the load, so that the server is idle while the engine runs alone.
        local = bench_engines([engine], sorted({1, max(1, remote.max_batch_size)}), plan.warmup, plan.iterations) \
            if engine else []
    method = {"duration": plan.duration, "warmup": WARMUP_S, "concurrency": levels, "closed_loop": True,
              "frames_per_request": 1,
              "local_engine": {"warmup": plan.warmup, "iterations": plan.iterations} if local else None}
    return write_load_report(load, local, plan.report_dir, described, system_info(), method)
