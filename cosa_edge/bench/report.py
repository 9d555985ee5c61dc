"""Benchmark reports: JSON for machines, Markdown for people, PNG plots for both."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from ..contract import INTENDED_USE
from ..fileio import atomic_write_bytes, atomic_write_json, atomic_write_text
from .system import cpu_class_text
from .runner import BenchResult
from .stats import LatencySummary


#: What write_report writes into its folder.
REPORT_FILES = ("report.json", "report.md", "latency.png", "throughput.png")


def _label(result: BenchResult) -> str:
    return f"{Path(result.engine).name} ({result.backend}, {result.precision})"


def method_text(method: dict[str, Any]) -> str:
    """One sentence on how the numbers were taken, from the options ``cosa-edge bench`` ran with."""
    timed = f"{method['duration']:g} s" if method.get("duration") else f"{method['iterations']} timed runs"
    turns = f", the engines taking turns in {method['rounds']} rounds" if method.get("rounds", 1) > 1 else ""
    return f"method: {method['warmup']} warm-up runs, then {timed} per engine and batch size{turns}"


def markdown_report(results: list[BenchResult], system: dict[str, Any], pipeline: dict[str, Any] | None,
                    baseline_name: str | None, method: dict[str, Any] | None = None) -> str:
    lines = ["# cosa-edge latency report", "", f"*{INTENDED_USE}*", "",
             f"CPU: {system['cpu']} ({system['cpu_cores']} cores, {cpu_class_text(system)}); "
             f"GPU: {', '.join(system['gpus']) or 'none'}; "
             f"Python {system['python']}; " + ", ".join(f"{k} {v}" for k, v in system["libraries"].items()), ""]
    lines += _latency_section(results, baseline_name, method)
    lines += _arithmetic_section(results) + _accuracy_section(results) + _stage_section(results)
    if pipeline:
        lines += _pipeline_section(pipeline)
    lines += ["", "![latency](latency.png)", "", "![throughput](throughput.png)", ""]
    return "\n".join(lines)


def _latency_section(results: list[BenchResult], baseline_name: str | None, method: dict[str, Any] | None) -> list[str]:
    ratio_note = f"ratio: median latency over {baseline_name}'s at the same batch size (below 1 is faster)" \
        if baseline_name else "ratio: no baseline given"
    lines = ["## Engine latency (ms per batch)", "", ratio_note, *(["", method_text(method)] if method else []), "",
             "| engine | batch | min | mean | median | p90 | p95 | p99 | max | std | images/s | ratio |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        s = r.latency_ms
        ratio = f"{r.ratio_to_baseline:.2f}" if r.ratio_to_baseline is not None else "–"
        lines.append(f"| {_label(r)} | {r.batch_size} | {s.min:.2f} | {s.mean:.2f} | {s.median:.2f} | {s.p90:.2f} | "
                     f"{s.p95:.2f} | {s.p99:.2f} | {s.max:.2f} | {s.std:.2f} | {r.throughput:.1f} | {ratio} |")
    return lines


def _arithmetic_section(results: list[BenchResult]) -> list[str]:
    if not any(r.gflop_per_image is not None for r in results):
        return []
    lines = ["", "## Arithmetic", "", "GFLOP per image counted from the model's ONNX graph (Conv, MatMul, Gemm); "
             "achieved GFLOP/s = GFLOP per image x images per second (an INT8 engine does the same operations "
             "in 8 bits).", "", "| engine | batch | GFLOP per image | achieved GFLOP/s |", "|---|---|---|---|"]
    lines += [f"| {_label(r)} | {r.batch_size} | {r.gflop_per_image:.2f} | {r.gflops:.0f} |"
              for r in results if r.gflop_per_image is not None]
    return lines


def _accuracy_section(results: list[BenchResult]) -> list[str]:
    scored = [r for r in results if r.accuracy]
    if not scored:
        return []
    first = scored[0].accuracy
    lines = ["", "## Accuracy beside latency", "",
             f"On {first['images']} labelled images ({first['lesion_images']} with a lesion): Dice and mIoU per image "
             "and accuracy and AUC over the images with a lesion; flips and agreement against the first FP32 engine "
             "of the same model (architecture, encoder, input size), marked reference.", "",
             "| engine | batch | median ms | Dice | mIoU | ACC | AUC | class flips (malignant to benign) | "
             "presence flips | mask Dice agreement |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in scored:
        a, agreement = r.accuracy, r.accuracy.get("agreement")
        cells = [_percent(a.get(k)) for k in ("dice", "miou", "acc")] + [_fraction(a.get("auc"))]
        if agreement:
            flips = agreement["class_flips"]
            cells += [f"{sum(flips.values())} ({flips['malignant_to_benign']})",
                      str(sum(agreement["presence_flips"].values())), f"{agreement['mask_dice_agreement']:.4f}"]
        else:
            cells += ["reference" if r.precision == "fp32" else "no FP32 engine of this model", "–", "–"]
        lines.append(f"| {_label(r)} | {r.batch_size} | {r.latency_ms.median:.2f} | " + " | ".join(cells) + " |")
    return lines


def _stage_section(results: list[BenchResult]) -> list[str]:
    names = _stage_names(results)
    lines = ["", "## Per stage (median ms per batch)", "", "| engine | batch | " + " | ".join(names) + " |",
             "|---|---|" + "---|" * len(names)]
    for r in results:
        cells = [f"{r.stages_ms[k].median:.3f}" if k in r.stages_ms else "–" for k in names]
        lines.append(f"| {_label(r)} | {r.batch_size} | " + " | ".join(cells) + " |")
    return lines


def _pipeline_section(pipeline: dict[str, Any]) -> list[str]:
    writing = ("writing the annotated video and the results" if pipeline.get("annotated_video", True)
               else "writing the results (JSONL) only, no annotated video")
    s = pipeline["latency_ms"]
    return ["", "## Streaming pipeline", "",
            f"Video {pipeline['video']}: {pipeline['frames']} frames, {writing}, "
            f"end to end {pipeline['fps']:.1f} frames/s against {pipeline['engine_only_fps']:.1f} frames/s for the "
            f"engine alone at batch {pipeline.get('batch_size', 1)} over as many frames: ratio {pipeline['ratio']:.2f} "
            f"(median of {len(pipeline['rounds'])} rounds, {pipeline['ratio_range'][0]:.2f}-"
            f"{pipeline['ratio_range'][1]:.2f}; the two taking turns, each run back to back).", "",
            "| round | pipeline frames/s | engine alone frames/s | ratio |", "|---|---|---|---|",
            *[f"| {i + 1} | {r['pipeline_fps']:.1f} | {r['engine_only_fps']:.1f} | {r['ratio']:.3f} |"
              for i, r in enumerate(pipeline["rounds"])], "",
            "| capture-to-result latency | min | median | p90 | p95 | p99 | max |", "|---|---|---|---|---|---|---|",
            f"| ms | {s['min']:.1f} | {s['median']:.1f} | {s['p90']:.1f} | {s['p95']:.1f} | {s['p99']:.1f} | "
            f"{s['max']:.1f} |"]


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}"


def _fraction(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def _stage_names(results: list[BenchResult]) -> list[str]:
    order = ["preprocess", "host_to_device", "compute", "device_to_host", "postprocess"]
    present = {k for r in results for k in r.stages_ms}
    return [k for k in order if k in present]


def _plot(results: list[BenchResult], path: Path, kind: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4), dpi=110)
    engines = list(dict.fromkeys(_label(r) for r in results))
    if kind == "latency":
        batch1 = [r for r in results if r.batch_size == min(x.batch_size for x in results)]
        summaries: list[LatencySummary] = [r.latency_ms for r in batch1]
        positions = range(len(batch1))
        axes.bar(positions, [s.median for s in summaries], color="#4c72b0", label="median")
        axes.errorbar(positions, [s.median for s in summaries],
                      yerr=[[s.median - s.min for s in summaries], [s.p99 - s.median for s in summaries]],
                      fmt="none", ecolor="black", capsize=4, label="min to p99")
        axes.set_xticks(list(positions), [_label(r) for r in batch1], rotation=15, ha="right", fontsize=7)
        axes.set(ylabel="ms per batch", title=f"Latency at batch {batch1[0].batch_size}")
        axes.legend(fontsize=7)
    else:
        for name in engines:
            rows = sorted((r for r in results if _label(r) == name), key=lambda r: r.batch_size)
            axes.plot([r.batch_size for r in rows], [r.throughput for r in rows], marker="o", label=name)
        axes.set(xlabel="batch size", ylabel="images / s", title="Throughput against batch size")
        axes.legend(fontsize=7)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    atomic_write_bytes(path, buffer.getvalue())


def write_report(results: list[BenchResult], out_dir: Path, system: dict[str, Any],
                 pipeline: dict[str, Any] | None = None, baseline_name: str | None = None,
                 method: dict[str, Any] | None = None) -> list[Path]:
    """report.json, report.md and two plots in ``out_dir``; ``method`` holds the options the numbers came from."""
    out_dir = Path(out_dir)
    atomic_write_json(out_dir / "report.json", {"intended_use": INTENDED_USE, "system": system, "method": method,
                                                "baseline": baseline_name,
                                                "results": [r.to_dict() for r in results], "pipeline": pipeline})
    atomic_write_text(out_dir / "report.md", markdown_report(results, system, pipeline, baseline_name, method))
    _plot(results, out_dir / "latency.png", "latency")
    _plot(results, out_dir / "throughput.png", "throughput")
    return [out_dir / n for n in REPORT_FILES]
