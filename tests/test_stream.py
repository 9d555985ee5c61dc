from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from cosa_edge.contract import ModelMetadata
from cosa_edge.data.phantom import write_sweep_video
from cosa_edge.engines.base import Engine, TensorSpec
from cosa_edge.errors import CosaEdgeError
from cosa_edge.stream.pipeline import PipelineOptions, run_pipeline
from cosa_edge.stream.postprocess import ProbabilitySmoother, summarise
from cosa_edge.stream.run import infer_source, parse_roi
from cosa_edge.stream.frame_sources import FrameSource

NO_LESION_KEYS = {"index", "timestamp", "status", "roi", "lesion_area_px", "lesion_share_of_roi", "bbox", "latency_ms",
                  "pixel_spacing_mm", "lesion_area_mm2", "lesion_long_axis_mm", "lesion_short_axis_mm"}
RECORD_KEYS = NO_LESION_KEYS | {"malignancy_score", "class_probabilities", "smoothed_probabilities", "predicted_class"}


class FakeEngine(Engine):
    """Dark pixels away from the sides are lesion (then some frames' lesions are wholly in view and judged); the
    malignant probability is the frame's mean brightness. Optionally slow."""

    backend = "fake"

    def __init__(self, delay: float = 0.0, size: int = 64) -> None:
        super().__init__(Path("fake.onnx"), ModelMetadata(architecture="fake", encoder="none", input_size=size))
        self.delay, self.calls, self.batches = delay, 0, []

    @property
    def inputs(self) -> list[TensorSpec]:
        return [TensorSpec("image", ("batch", 1, 64, 64), "float32")]

    @property
    def outputs(self) -> list[TensorSpec]:
        return []

    def _infer(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        self.calls += 1
        self.batches.append(len(batch))
        started = time.perf_counter()
        time.sleep(self.delay)
        self.last_times.stages = {"compute": (time.perf_counter() - started) * 1e3}
        malignant = batch.mean(axis=(1, 2, 3)) / 255.0
        lesion = (batch < 60).astype(np.float32)
        lesion[..., :4, :], lesion[..., -4:, :], lesion[..., :4], lesion[..., -4:] = 0, 0, 0, 0
        return {"lesion_probability": lesion,
                "class_probabilities": np.stack([1 - malignant, malignant], axis=1).astype(np.float32)}


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_sweep_video(tmp_path_factory.mktemp("video") / "sweep.avi", seed=1, frames=40, size=(96, 128), fps=100)


def test_offline_keeps_every_frame_in_order(video: Path, tmp_path: Path) -> None:
    engine = FakeEngine()
    stats = infer_source(str(video), engine, tmp_path / "out.mp4", tmp_path / "out.jsonl", batch_size=4, progress=False)
    records = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()[1:]]  # after the header
    assert [r["index"] for r in records] == list(range(40)) and stats.frames_processed == 40
    # The JSONL writer adds the engine's hash; a frame without a lesion, or with one only partly in view, carries
    # no class.
    def expected_keys(record: dict) -> set[str]:
        if record["status"] != "lesion":
            return NO_LESION_KEYS
        return NO_LESION_KEYS | {"reason"} if record.get("reason") == "lesion_partly_out_of_view" else RECORD_KEYS

    assert all(set(r) == expected_keys(r) | {"engine_sha256"} for r in records)
    assert any("predicted_class" in r for r in records)
    assert max(engine.batches) > 1  # batching happened
    capture = cv2.VideoCapture(str(tmp_path / "out.mp4"))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 40
    assert (int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))) == (128, 96)
    assert capture.get(cv2.CAP_PROP_FPS) == pytest.approx(100, rel=0.01)
    assert sum(capture.read()[0] for _ in range(40)) == 40
    assert not list(tmp_path.glob(".*partial*"))


def test_batching_does_not_change_results(video: Path, tmp_path: Path) -> None:
    infer_source(str(video), FakeEngine(), None, tmp_path / "b1.jsonl", batch_size=1, progress=False)
    infer_source(str(video), FakeEngine(), None, tmp_path / "b8.jsonl", batch_size=8, progress=False)

    def strip(text: str) -> list[dict]:
        return [{k: v for k, v in json.loads(line).items() if k != "latency_ms"} for line in text.splitlines()[1:]]

    assert strip((tmp_path / "b1.jsonl").read_text()) == strip((tmp_path / "b8.jsonl").read_text())


def test_blank_frames_between_batches_keep_their_place(tmp_path: Path) -> None:
    # Offline, frames are decoded in the inference thread between engine calls (no reader thread beside the
    # engine's workers: stream/pipeline.py); a rejected frame ends a batch and must still come out in order.
    folder = tmp_path / "frames"
    folder.mkdir()
    rng = np.random.default_rng(0)
    blank = {2, 3, 7}
    for i in range(10):
        image = np.full((48, 64), 128, np.uint8) if i in blank else rng.integers(30, 220, (48, 64), dtype=np.uint8)
        cv2.imwrite(str(folder / f"{i:02d}.png"), image)
    threads: set[str] = set()
    by_batch = {}
    for batch_size in (1, 4):
        results = []

        def on_result(frame, result, overlay, results: list = results) -> None:  # noqa: ANN001
            threads.update(t.name for t in threading.enumerate())
            results.append(result)

        engine = FakeEngine()
        stats = run_pipeline(FrameSource(str(folder)), engine, on_result,
                             PipelineOptions(batch_size=batch_size, draw=False))
        assert stats.frames_processed == stats.frames_read == 10
        assert [r.index for r in results] == list(range(10))
        assert {r.index for r in results if r.status == "rejected"} == blank
        assert sum(engine.batches) == 10 - len(blank)  # the rejected frames never reached the engine
        by_batch[batch_size] = [{k: v for k, v in r.record().items() if k != "latency_ms"} for r in results]
    assert engine.batches == [2, 3, 2]  # 0-1, 4-6, 8-9: a rejected frame ends a batch, which resumes after it
    assert str(by_batch[1]) == str(by_batch[4])
    assert "inference" in threads and not threads & {"reader", "preprocess"}


def test_realtime_skips_stale_frames_behind_a_slow_engine(video: Path, tmp_path: Path) -> None:
    # The file plays at 100 frames/s; the engine takes 40 ms a frame, so most frames must be skipped.
    stats = infer_source(str(video), FakeEngine(delay=0.04), None, tmp_path / "rt.jsonl", realtime=True, progress=False)
    indices = [json.loads(line)["index"] for line in (tmp_path / "rt.jsonl").read_text().splitlines()[1:]]
    assert stats.frames_skipped > 10
    assert stats.frames_processed + stats.frames_skipped == stats.frames_read == 40
    assert indices == sorted(indices) and len(indices) == stats.frames_processed
    assert max(stats.latencies_ms) < 500  # bounded: no frame waited behind a long queue


def test_ctrl_c_leaves_valid_outputs_for_the_frames_done(video: Path, tmp_path: Path) -> None:
    seen = []

    def on_result(frame, result, overlay) -> None:  # noqa: ANN001
        if len(seen) == 5:
            raise KeyboardInterrupt
        seen.append(frame.index)

    stats = run_pipeline(FrameSource(str(video)), FakeEngine(), on_result)
    assert stats.interrupted and stats.frames_processed == 5 and seen == [0, 1, 2, 3, 4]


def test_engine_failure_still_closes_outputs(video: Path, tmp_path: Path) -> None:
    class Failing(FakeEngine):
        def _infer(self, batch: np.ndarray) -> dict[str, np.ndarray]:
            if self.calls >= 3:
                raise RuntimeError("device lost")
            return super()._infer(batch)

    with pytest.raises(RuntimeError, match="device lost"):
        infer_source(str(video), Failing(), tmp_path / "o.mp4", tmp_path / "o.jsonl", progress=False)
    lines = (tmp_path / "o.jsonl").read_text().splitlines()[1:]  # after the header
    assert 1 <= len(lines) <= 3 and [json.loads(line)["index"] for line in lines] == list(range(len(lines)))
    assert cv2.VideoCapture(str(tmp_path / "o.mp4")).read()[0]


def test_an_engine_failure_after_the_last_result_was_taken_ends_the_run(video: Path) -> None:
    """The engine fails only once the caller has taken every result so far and waits for the next: the run must
    end with the engine's error (it used to wait for that result for ever)."""
    import threading

    taken = threading.Event()

    class FailsWhileTheCallerWaits(FakeEngine):
        def _infer(self, batch: np.ndarray) -> dict[str, np.ndarray]:
            if self.calls >= 2:
                assert taken.wait(10)  # the caller has taken both results and waits for more
                time.sleep(0.3)
                raise RuntimeError("device lost")
            return super()._infer(batch)

    seen: list[int] = []

    def on_result(frame, result, overlay) -> None:  # noqa: ANN001
        seen.append(frame.index)
        if len(seen) == 2:
            taken.set()

    outcome: list[BaseException] = []
    worker = threading.Thread(target=lambda: _run_catching(video, FailsWhileTheCallerWaits(), on_result, outcome),
                              daemon=True)
    worker.start()
    worker.join(timeout=30)
    assert not worker.is_alive(), "the pipeline hung after the engine failed"
    assert len(outcome) == 1 and "device lost" in str(outcome[0]) and seen == [0, 1]


def _run_catching(video: Path, engine: Engine, on_result, outcome: list[BaseException]) -> None:  # noqa: ANN001
    try:
        run_pipeline(FrameSource(str(video)), engine, on_result)
    except BaseException as exc:  # handed to the test's thread
        outcome.append(exc)


def test_truncated_video_is_processed_up_to_the_damage(video: Path, tmp_path: Path) -> None:
    damaged = tmp_path / "damaged.avi"
    data = video.read_bytes()
    damaged.write_bytes(data[: len(data) // 2])
    source = FrameSource(str(damaged))
    frames = list(source)
    assert 0 < len(frames) < 40
    if source.info.frame_count:  # the container still announces 40 frames
        assert "stopped at frame" in source.stopped_early


@pytest.mark.parametrize("content, message", [(b"", "cannot open video"),
                                              (b"not a video at all" * 10, "cannot open video")])
def test_unreadable_videos_give_clear_errors(tmp_path: Path, content: bytes, message: str) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(content)
    with pytest.raises(CosaEdgeError, match=message):
        FrameSource(str(bad))
    with pytest.raises(CosaEdgeError, match="does not exist"):
        FrameSource(str(tmp_path / "missing.mp4"))


def test_unwritable_output_is_refused_before_any_work(video: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(CosaEdgeError, match="cannot create the folder"):
        infer_source(str(video), FakeEngine(), blocker / "out.mp4", None, progress=False)
    with pytest.raises(CosaEdgeError, match="use one of"):
        infer_source(str(video), FakeEngine(), tmp_path / "out.gif", None, progress=False)


def test_images_and_folders_are_sources(tmp_path: Path) -> None:
    frame = np.full((50, 70, 3), 200, np.uint8)
    frame[10:30, 20:40] = 10
    (tmp_path / "imgs").mkdir()
    for i in range(3):
        cv2.imwrite(str(tmp_path / "imgs" / f"{i}.png"), frame)
    stats = infer_source(str(tmp_path / "imgs"), FakeEngine(), None, tmp_path / "r.jsonl", progress=False)
    assert stats.frames_processed == 3
    infer_source(str(tmp_path / "imgs" / "0.png"), FakeEngine(), tmp_path / "annotated.png", None, progress=False)
    assert cv2.imread(str(tmp_path / "annotated.png")).shape == (50, 70, 3)


def test_roi_offsets_boxes_and_shares() -> None:
    probability = np.zeros((64, 64), np.float32)
    probability[16:32, 16:48] = 1.0  # a quarter of the height, half of the width
    result = summarise(0, 0.0, probability, np.array([0.3, 0.7]), (100, 50, 128, 128), latency_ms=1.0)
    assert result.lesion_share_of_roi == pytest.approx(0.125)
    assert result.bbox == [100 + 32, 50 + 32, 64, 32] and result.predicted == "malignant"
    assert parse_roi("1,2,3,4") == (1, 2, 3, 4)
    with pytest.raises(CosaEdgeError, match="x,y,w,h"):
        parse_roi("1,2,3")


def test_smoother_is_an_exponential_moving_average() -> None:
    smoother = ProbabilitySmoother(0.5)
    np.testing.assert_allclose(smoother(np.array([1.0, 0.0])), [1.0, 0.0])
    np.testing.assert_allclose(smoother(np.array([0.0, 1.0])), [0.5, 0.5])
    np.testing.assert_allclose(smoother(np.array([0.0, 1.0])), [0.25, 0.75])
