"""Latency statistics the way trtexec reports them."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

PERCENTILES = (50, 90, 95, 99)


@dataclass(frozen=True)
class LatencySummary:
    count: int
    min: float
    mean: float
    median: float
    p90: float
    p95: float
    p99: float
    max: float
    std: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def summarise_latencies(samples_ms: list[float] | np.ndarray) -> LatencySummary:
    """Percentiles by linear interpolation between order statistics (numpy's default, as trtexec's)."""
    values = np.asarray(samples_ms, dtype=np.float64)
    if values.size == 0:
        raise ValueError("no latency samples")
    p50, p90, p95, p99 = np.percentile(values, PERCENTILES)
    return LatencySummary(count=int(values.size), min=float(values.min()), mean=float(values.mean()), median=float(p50),
                          p90=float(p90), p95=float(p95), p99=float(p99), max=float(values.max()),
                          std=float(values.std(ddof=1)) if values.size > 1 else 0.0)
