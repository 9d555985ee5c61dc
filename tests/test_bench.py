from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from cosa_edge.bench.report import write_report
from cosa_edge.bench.runner import attach_ratios, bench_engine, bench_engines, bench_pipeline
from cosa_edge.bench.stats import summarise_latencies
from cosa_edge.bench.system import system_info
from cosa_edge.cli import cli
from tests.test_stream import FakeEngine


def test_percentiles_on_known_samples() -> None:
    s = summarise_latencies(list(range(1, 101)))  # 1..100 ms
    assert (s.min, s.max, s.count) == (1, 100, 100)
    assert s.median == pytest.approx(50.5) and s.mean == pytest.approx(50.5)
    assert s.p90 == pytest.approx(90.1) and s.p95 == pytest.approx(95.05) and s.p99 == pytest.approx(99.01)
    assert s.std == pytest.approx(np.std(np.arange(1, 101), ddof=1))
    single = summarise_latencies([7.0])
    assert single.p99 == 7.0 and single.std == 0.0


def test_bench_report_files(tmp_path: Path) -> None:
    slow, fast = FakeEngine(delay=0.004), FakeEngine()
    baseline = bench_engine(slow, [1, 2], warmup=1, iterations=5, progress=False)
    measured = bench_engine(fast, [1, 2], warmup=1, iterations=5, progress=False)
    attach_ratios(measured, baseline)
    # The ratio's arithmetic, not which engine was faster: on a shared machine a 4 ms sleep can lose to a busy core
    # (a fresh-clone run beside a training run saw it), and speed belongs to benchmarks, not unit tests.
    medians = {r.batch_size: r.latency_ms.median for r in baseline}
    assert [r.ratio_to_baseline for r in measured] == pytest.approx(
        [r.latency_ms.median / medians[r.batch_size] for r in measured])
    assert {"preprocess", "compute", "postprocess"} <= set(measured[0].stages_ms)
    method = {"warmup": 1, "iterations": 5, "duration": None, "rounds": 3, "batch_sizes": [1, 2]}
    files = write_report(baseline + measured, tmp_path, system_info(), baseline_name="slow", method=method)
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["method"] == method
    assert "method: 1 warm-up runs, then 5 timed runs per engine and batch size, the engines taking turns in 3 rounds" \
        in (tmp_path / "report.md").read_text()
    assert report["system"]["cpu_cores"] and "numpy" in report["system"]["libraries"]
    latency = report["results"][0]["latency_ms"]
    assert len(report["results"]) == 4 and latency["p99"] >= latency["median"]
    assert ("| engine | batch | min | mean | median | p90 | p95 | p99 | max | std | images/s | ratio |"
            in (tmp_path / "report.md").read_text())
    for png in files[2:]:
        assert png.read_bytes()[:4] == b"\x89PNG"


class DriftingEngine(FakeEngine):
    """Its latency grows with every call made to any engine sharing ``load``: a machine getting busier."""

    def __init__(self, name: str, load: list[int], log: list[str]) -> None:
        super().__init__()
        self.name, self.load, self.log = name, load, log

    def _infer(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        self.load[0] += 1
        self.log.append(self.name)
        # Tens of milliseconds, so that a busy machine's scheduling noise (a millisecond or so) stays small beside it.
        self.delay = 0.01 * (1 + 0.1 * self.load[0])
        return super()._infer(batch)


def test_interleaved_rounds_cancel_drifting_load() -> None:
    def ratio(rounds: int) -> tuple[float, list[str]]:
        load, log = [0], []
        first, second = DriftingEngine("a", load, log), DriftingEngine("b", load, log)
        results = bench_engines([first, second], [1], warmup=0, iterations=20, rounds=rounds, settle_s=0.0,
                                progress=False)
        assert [r.latency_ms.count for r in results] == [20, 20]
        return results[1].latency_ms.median / results[0].latency_ms.median, log

    # Two identical engines: timed one after the other, the second looks about twice as slow.
    blocked, log = ratio(rounds=1)
    assert log == ["a"] * 20 + ["b"] * 20 and blocked > 1.5
    # Taking turns in 10 rounds (order rotating each round), both see the same load.
    interleaved, log = ratio(rounds=10)
    assert log[:8] == ["a", "a", "b", "b", "b", "b", "a", "a"]
    assert 0.85 < interleaved < 1.2


def test_pipeline_and_engine_alone_take_turns_over_the_same_frames(tmp_path: Path) -> None:
    """The pipeline ratio compares runs made side by side: each round times the pipeline over the whole video and
    the engine alone over as many frames, the order alternating. Real: the pipeline, the video, the timing; the
    engine is a sleep of 20 ms a call (FakeEngine), so the engine alone cannot exceed 50 frames/s."""
    from cosa_edge.data.phantom import write_sweep_video

    video = write_sweep_video(tmp_path / "v.avi", seed=3, frames=10, size=(96, 128), fps=100)
    engine, log = FakeEngine(delay=0.02), []
    pipeline = bench_pipeline(engine, str(video), rounds=3, settle_s=0.0, log=log)
    assert log == ["pipeline", "engine", "engine", "pipeline", "pipeline", "engine"]
    assert engine.calls == 3 * 10 + 3 * 10  # as many engine calls alone as in the pipeline, batch 1
    assert pipeline["frames"] == 10 and len(pipeline["rounds"]) == 3
    assert all(15 < r["engine_only_fps"] <= 50 for r in pipeline["rounds"])  # sleeps overshoot on a busy machine
    ratios = sorted(r["pipeline_fps"] / r["engine_only_fps"] for r in pipeline["rounds"])
    assert pipeline["ratio"] == pytest.approx(ratios[1])
    assert pipeline["ratio_range"] == pytest.approx([ratios[0], ratios[2]])
    # The pipeline does the engine's work and more: it cannot be much faster than the engine alone.
    assert 0.3 < pipeline["ratio"] < 1.1


def test_the_pipeline_can_be_measured_without_the_annotated_video(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """--no-annotated-video: the pipeline writes the JSONL only. Real: the pipeline and the video; the engine is the
    20 ms sleep of FakeEngine; infer_source is wrapped only to record which outputs each round asked for."""
    import cosa_edge.stream.run as run
    from cosa_edge.data.phantom import write_sweep_video

    video = write_sweep_video(tmp_path / "v.avi", seed=3, frames=6, size=(96, 128), fps=100)
    real, asked = run.infer_source, []

    def recording(source: str, engine: object, out: Path | None, results: Path | None, **options: object) -> object:
        asked.append((out, results))
        return real(source, engine, out, results, **options)

    monkeypatch.setattr(run, "infer_source", recording)
    headless = bench_pipeline(FakeEngine(delay=0.02), str(video), rounds=2, settle_s=0.0, annotated_video=False)
    assert [out for out, _ in asked] == [None, None] and all(results is not None for _, results in asked)
    assert headless["annotated_video"] is False and headless["frames"] == 6
    asked.clear()
    annotated = bench_pipeline(FakeEngine(delay=0.02), str(video), rounds=1, settle_s=0.0)
    assert asked[0][0] is not None and asked[0][0].suffix == ".mp4" and annotated["annotated_video"] is True


def test_cli_infer_and_bench(exported_onnx: Path, trained_checkpoint: Path, tmp_path: Path) -> None:
    from cosa_edge.data.phantom import write_sweep_video

    video = write_sweep_video(tmp_path / "v.mp4", seed=2, frames=12, size=(96, 128))
    runner = CliRunner()
    result = runner.invoke(cli, ["infer", "--video", str(video), "--engine", str(exported_onnx), "--out",
                                 str(tmp_path / "o.mp4"), "--results", str(tmp_path / "o.jsonl"), "--smooth", "0.5"])
    assert result.exit_code == 0, result.output
    assert "processed 12 of 12 frames" in result.output
    assert len((tmp_path / "o.jsonl").read_text().splitlines()) == 1 + 12  # the header, then one record a frame
    result = runner.invoke(cli, ["bench", "--engine", str(exported_onnx), "--baseline", str(trained_checkpoint),
                                 "--report", str(tmp_path / "rep"), "--batch", "1,2", "--iterations", "3",
                                 "--warmup", "1", "--video", str(video)])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert {r["backend"] for r in report["results"]} == {"torch", "onnxruntime"}
    assert report["pipeline"]["frames"] == 12 and report["pipeline"]["fps"] > 0
    assert len(report["pipeline"]["rounds"]) == 5  # --rounds holds for the pipeline comparison too
    assert report["pipeline"]["annotated_video"] is True
    assert "writing the annotated video and the results" in (tmp_path / "rep" / "report.md").read_text()
    assert report["method"]["rounds"] == 5 and report["method"]["iterations"] == 3
    onnx_rows = [r for r in report["results"] if r["backend"] == "onnxruntime"]
    assert all(r["ratio_to_baseline"] > 0 for r in onnx_rows)


def test_cli_infer_opens_a_checkpoint(trained_checkpoint: Path, tmp_path: Path) -> None:
    """A .pt engine goes through cosa_edge.backends to the export side's PyTorch engine."""
    from cosa_edge.data.phantom import write_sweep_video

    video = write_sweep_video(tmp_path / "v.mp4", seed=4, frames=4, size=(96, 128))
    result = CliRunner().invoke(cli, ["infer", "--video", str(video), "--engine", str(trained_checkpoint),
                                      "--results", str(tmp_path / "o.jsonl"), "--threads", "1"])
    assert result.exit_code == 0, result.output
    assert "processed 4 of 4 frames" in result.output


def test_cli_infer_bad_inputs(exported_onnx: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["infer", "--video", str(tmp_path / "none.mp4"), "--engine", str(exported_onnx),
                                 "--results", str(tmp_path / "r.jsonl")])
    assert result.exit_code == 1 and "does not exist" in result.output and "Traceback" not in result.output
    result = runner.invoke(cli, ["infer", "--video", "x.mp4", "--engine", str(exported_onnx)])
    assert result.exit_code == 1 and "nothing to write" in result.output
    wrong = tmp_path / "wrong.engine"
    wrong.write_bytes(b"plan")
    result = runner.invoke(cli, ["bench", "--engine", str(wrong), "--report", str(tmp_path / "r")])
    assert result.exit_code == 1 and "Traceback" not in result.output


def test_bench_puts_accuracy_and_arithmetic_beside_latency(exported_onnx: Path, tmp_path: Path) -> None:
    """Two real engines of one model (FP32 and INT8, ONNX Runtime) scored on the same labelled phantoms."""
    pytest.importorskip("onnxruntime")
    int8 = tmp_path / "model.int8.onnx"
    built = CliRunner().invoke(cli, ["build-engine", str(exported_onnx), "-o", str(int8), "--target", "onnxruntime",
                                     "--precision", "int8", "--calib-data", "phantom:40", "--calib-count", "24",
                                     "--accept-accuracy-loss"])
    assert built.exit_code == 0, built.output
    report_dir = tmp_path / "report"
    result = CliRunner().invoke(cli, ["bench", "--engine", str(exported_onnx), "--engine", str(int8), "--report",
                                      str(report_dir), "--warmup", "1", "--iterations", "3", "--rounds", "1",
                                      "--check-data", "phantom:12"])
    assert result.exit_code == 0, result.output
    fp32, quantized = json.loads((report_dir / "report.json").read_text())["results"]
    for entry in (fp32, quantized):
        accuracy = entry["accuracy"]
        assert accuracy["images"] == 12 and set(accuracy) >= {"dice", "miou", "acc", "auc", "images"}
        assert 0.3 < accuracy["dice"] <= 1 and 0 <= accuracy["acc"] <= 1
        # The model's arithmetic, the same for both (an INT8 graph does the same operations in 8 bits).
        assert entry["gflop_per_image"] == pytest.approx(fp32["gflop_per_image"]) and entry["gflop_per_image"] > 0.01
        assert entry["gflops"] == pytest.approx(entry["gflop_per_image"] * entry["throughput"])
    assert "agreement" not in fp32["accuracy"]  # the FP32 engine is the reference
    agreement = quantized["accuracy"]["agreement"]
    assert agreement["reference"] == exported_onnx.name and 0.9 < agreement["mask_dice_agreement"] <= 1
    assert set(agreement["class_flips"]) == {"benign_to_malignant", "malignant_to_benign"}
    text = (report_dir / "report.md").read_text()
    assert "## Accuracy beside latency" in text and "## Arithmetic" in text


def test_the_flop_count_of_a_known_graph(tmp_path: Path) -> None:
    """One 3x3 convolution (8 -> 16 channels) on 32x32 and a Gemm (16 -> 2): counted by hand."""
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper, numpy_helper

    from cosa_edge.bench.flops import gflop_per_image

    weight = numpy_helper.from_array(np.ones((16, 8, 3, 3), np.float32), "w")
    dense = numpy_helper.from_array(np.ones((2, 16), np.float32), "d")
    axes = numpy_helper.from_array(np.array([2, 3], np.int64), "axes")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
         helper.make_node("ReduceMean", ["c", "axes"], ["m"], keepdims=0),
         helper.make_node("Gemm", ["m", "d"], ["y"], transB=1)],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 8, 32, 32])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 2])], [weight, dense, axes])
    path = tmp_path / "g.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))
    expected = 2 * (16 * 32 * 32) * (8 * 3 * 3) + 2 * 2 * 16
    assert gflop_per_image(path) == pytest.approx(expected / 1e9)


def test_bench_options_that_need_another_are_refused_plainly(tmp_path: Path) -> None:
    """Checked before any engine opens (the engine file here does not even exist)."""
    runner = CliRunner()
    for extra, needed in ((["--no-annotated-video"], "give --video too"),
                          (["--split", "f.json:0"], "give --check-data too")):
        result = runner.invoke(cli, ["bench", "--engine", str(tmp_path / "none.onnx"), "--report", str(tmp_path / "r"),
                                     *extra])
        assert result.exit_code != 0 and needed in result.output and "Traceback" not in result.output
