"""The load test's report: report.json, report.md and a plot, as `cosa-edge bench` writes for engines."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from ..contract import INTENDED_USE
from ..fileio import atomic_write_bytes, atomic_write_json, atomic_write_text
from .load import LoadResult
from .system import cpu_class_text
from .runner import BenchResult


#: What write_load_report writes into its folder.
LOAD_REPORT_FILES = ("report.json", "report.md", "throughput.png")


def markdown_load_report(load: list[LoadResult], local: list[BenchResult], server: dict[str, Any],
                         system: dict[str, Any], method: dict[str, Any]) -> str:
    lines = ["# cosa-edge load report", "", f"*{INTENDED_USE}*", "",
             f"Server: model {server['model']!r} at {server['address']} ({server['description']}); client CPU: "
             f"{system['cpu']} ({system['cpu_cores']} cores, {cpu_class_text(system)}); Python {system['python']}.", "",
             f"method: {method['duration']:g} s per concurrency after {method['warmup']:g} s of warm-up; closed loop, "
             "one frame per request; latency from sending a request to its answer (the server's queue included).",
             ""]
    best_local = max((r.throughput for r in local), default=None)
    ratio_note = f"; ratio: throughput over the local engine's best ({best_local:.1f} images/s)" if best_local else ""
    lines += [f"## Throughput and latency by concurrency{ratio_note}", "",
              "| concurrency | sent | answered | errors | answers/s | p50 ms | p90 ms | p95 ms | p99 ms | max ms | "
              "ratio |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in load:
        s = r.latency_ms
        cells = [f"{v:.1f}" for v in (s.median, s.p90, s.p95, s.p99, s.max)] if s else ["–"] * 5
        ratio = f"{r.throughput / best_local:.2f}" if best_local else "–"
        lines.append(f"| {r.concurrency} | {r.sent} | {r.answered} | {r.errors} | {r.throughput:.1f} | "
                     + " | ".join(cells) + f" | {ratio} |")
    failures = {kind: n for r in load for kind, n in r.error_kinds.items()}
    if failures:
        lines += ["", "Errors:", *(f"- {n} x {kind}" for kind, n in failures.items())]
    if local:
        lines += ["", "## The same engine, local (no server)", "",
                  "| engine | batch | median ms | p99 ms | images/s |", "|---|---|---|---|---|"]
        for r in local:
            lines.append(f"| {Path(r.engine).name} ({r.backend}, {r.precision}) | {r.batch_size} | "
                         f"{r.latency_ms.median:.2f} | {r.latency_ms.p99:.2f} | {r.throughput:.1f} |")
    lines += ["", "![throughput](throughput.png)", ""]
    return "\n".join(lines)


def _plot(load: list[LoadResult], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, left = plt.subplots(figsize=(7, 4), dpi=110)
    levels = [r.concurrency for r in load]
    left.plot(levels, [r.throughput for r in load], marker="o", color="#4c72b0", label="answers/s")
    left.set(xlabel="requests in flight", ylabel="answers / s", xscale="log", title="Server under load")
    left.set_xticks(levels, [str(v) for v in levels])
    right = left.twinx()
    right.plot(levels, [r.latency_ms.p99 if r.latency_ms else float("nan") for r in load], marker="s",
               color="#c44e52", label="p99 ms")
    right.set(ylabel="p99 latency (ms)")
    figure.legend(fontsize=7, loc="upper left")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    atomic_write_bytes(path, buffer.getvalue())


def write_load_report(load: list[LoadResult], local: list[BenchResult], out_dir: Path, server: dict[str, Any],
                      system: dict[str, Any], method: dict[str, Any]) -> list[Path]:
    out_dir = Path(out_dir)
    atomic_write_json(out_dir / "report.json", {"intended_use": INTENDED_USE, "system": system, "method": method,
                                                "server": server, "load": [r.to_dict() for r in load],
                                                "local": [r.to_dict() for r in local]})
    atomic_write_text(out_dir / "report.md", markdown_load_report(load, local, server, system, method))
    _plot(load, out_dir / "throughput.png")
    return [out_dir / n for n in LOAD_REPORT_FILES]
