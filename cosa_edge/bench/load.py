"""`cosa-edge bench --server`: a Triton server under load, the way perf_analyzer measures one.

At each concurrency C, C requests are kept in flight for ``duration`` seconds (closed loop: each answer sends
the next request), one frame per request, as probes each sending their own frames would. Latency is from
sending a request to its answer (the client's view, queueing in the server's dynamic batcher included);
throughput is answers per second over the measured window. Every request sent is counted once, answered or
failed (an error answer, or no answer within the timeout); the report shows both counts, and
``sent == answered + errors`` is checked before anything is written.

The client runs on the same machine as `cosa-edge serve` here, so at high concurrency client and server share
its cores: the figures describe that arrangement, not a production Triton on a GPU.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import CosaEdgeError, first_line
from .stats import LatencySummary, summarise_latencies

if TYPE_CHECKING:  # the `triton` extra, which a load test needs anyway
    from tritonclient.grpc import InferResult

    from ..serve.client import TritonServerEngine

#: Seconds of load before each measured window, so that the server's batcher and caches settle.
WARMUP_S = 1.0
ANSWER_TIMEOUT_S = 30.0


@dataclass
class LoadResult:
    concurrency: int
    duration_s: float
    sent: int
    answered: int
    errors: int
    throughput: float  # answers per second
    latency_ms: LatencySummary | None
    error_kinds: dict[str, int] = field(default_factory=dict)  # first line of each distinct error, and how often

    def to_dict(self) -> dict[str, Any]:
        return {"concurrency": self.concurrency, "duration_s": self.duration_s, "sent": self.sent,
                "answered": self.answered, "errors": self.errors, "throughput": self.throughput,
                "latency_ms": self.latency_ms.to_dict() if self.latency_ms else None, "error_kinds": self.error_kinds}


def parse_concurrency(text: str) -> list[int]:
    try:
        levels = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise CosaEdgeError(f"--concurrency {text!r} must list integers, e.g. 1,4,16") from None
    if not levels or levels[0] < 1:
        raise CosaEdgeError("--concurrency levels must be at least 1")
    return levels


class _Tally:
    """The measured requests' counts and latencies; gRPC's callback threads update them under one lock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latencies: list[float] = []
        self.errors: Counter[str] = Counter()
        self.sent = self.answered = self.failed = 0
        self.last_answer = 0.0  # when the last measured request was answered: the end of the measured window

    def count_sent(self) -> None:
        with self.lock:
            self.sent += 1

    def count_answer(self, sent_at: float, done: float, error: BaseException | None) -> None:
        with self.lock:
            self.last_answer = max(self.last_answer, done)
            if error is not None:
                self.failed += 1
                self.errors[first_line(error)] += 1
            else:
                self.answered += 1
                self.latencies.append((done - sent_at) * 1000.0)

    def result(self, concurrency: int, duration_s: float, start_measuring: float) -> LoadResult:
        """The level's result once every request has an answer or has timed out; the rest count as lost."""
        window = max(self.last_answer - start_measuring, 1e-9)
        with self.lock:
            sent, answered, failed = self.sent, self.answered, self.failed
        lost = sent - answered - failed
        if lost:
            self.errors[f"no answer within {ANSWER_TIMEOUT_S:.0f} s"] += lost
            failed += lost
        return LoadResult(concurrency=concurrency, duration_s=duration_s, sent=sent, answered=answered, errors=failed,
                          throughput=answered / window,
                          latency_ms=summarise_latencies(self.latencies) if self.latencies else None,
                          error_kinds=dict(self.errors))


def _load_at(engine: TritonServerEngine, frames: np.ndarray, concurrency: int, duration_s: float,
             warmup_s: float) -> LoadResult:
    """``engine``: a :class:`cosa_edge.serve.client.TritonServerEngine` (its client, model and input builder)."""
    slots = threading.Semaphore(concurrency)
    tally = _Tally()
    start_measuring = time.perf_counter() + warmup_s
    stop_sending = start_measuring + duration_s
    inputs = [engine.request_input(frames[i:i + 1]) for i in range(len(frames))]

    def send(index: int) -> None:
        sent_at = time.perf_counter()
        measured = sent_at >= start_measuring

        def callback(result: InferResult | None, error: BaseException | None) -> None:
            done = time.perf_counter()
            if measured:
                tally.count_answer(sent_at, done, error)
            slots.release()

        if measured:
            tally.count_sent()
        try:
            engine.client.async_infer(engine.model, [inputs[index % len(inputs)]], callback,
                                      client_timeout=ANSWER_TIMEOUT_S)
        except Exception as exc:  # the request never left: a failure of its own, counted as one
            callback(None, exc)

    index = 0
    while time.perf_counter() < stop_sending:
        if slots.acquire(timeout=ANSWER_TIMEOUT_S):
            send(index)
            index += 1
    # Wait for every request still in flight: an answer or a timeout error each, so none goes missing.
    for _ in range(concurrency):
        if not slots.acquire(timeout=ANSWER_TIMEOUT_S + 5.0):
            break
    return tally.result(concurrency, duration_s, start_measuring)


def load_test(engine: TritonServerEngine, frames: np.ndarray, levels: list[int], duration_s: float = 10.0,
              warmup_s: float = WARMUP_S, progress: bool = True) -> list[LoadResult]:
    """Throughput and latency at each concurrency in ``levels``; ``frames``: prepared (N, 1, S, S) float32."""
    if len(frames) == 0:
        raise CosaEdgeError("the load test needs at least one frame")
    results = []
    for level in levels:
        if progress:
            print(f"load: {level} in flight for {duration_s:g} s ...", flush=True)
        result = _load_at(engine, frames, level, duration_s, warmup_s)
        if result.sent != result.answered + result.errors:  # the count the report promises
            raise AssertionError(f"load test lost requests: sent {result.sent}, answered {result.answered}, "
                                 f"errors {result.errors}")
        results.append(result)
    return results
