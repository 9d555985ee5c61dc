"""DICOM through `cosa-edge infer`: every frame in order at its own rate, the scanner's region, sizes in mm,
series as separate clips, and no patient attribute in any output that is not DICOM.

Real: pydicom's own ultrasound cine and DICOM files written by pydicom (tests/dicom_files.py), the frame
source, pipeline, post-processing, measurements, overlay and writers. Stand-in: the engine (tests/test_stream.py's
FakeEngine, or a disc-drawing engine below), so that what the records must say is known exactly.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest

pydicom = pytest.importorskip("pydicom")

from pydicom.data import get_testdata_file  # noqa: E402

from cosa_edge.contract import ModelMetadata  # noqa: E402
from cosa_edge.engines.base import Engine, TensorSpec  # noqa: E402
from cosa_edge.errors import CosaEdgeError  # noqa: E402
from cosa_edge.stream.run import infer_source, parse_pixel_spacing  # noqa: E402
from tests.dicom_files import SECRETS, NoPlugins, phantom, write_dicom, write_sr  # noqa: E402
from tests.test_stream import FakeEngine  # noqa: E402


class DiscEngine(Engine):
    """A lesion disc of ``radius`` (in model pixels) in the middle of every frame; class probabilities fixed."""

    backend = "fake"

    def __init__(self, radius: float = 16.0, size: int = 64, malignant: float = 0.7) -> None:
        super().__init__(Path("disc.onnx"), ModelMetadata(architecture="fake", encoder="none", input_size=size))
        self.radius, self.size, self.malignant = radius, size, malignant

    @property
    def inputs(self) -> list[TensorSpec]:
        return [TensorSpec("image", ("batch", 1, self.size, self.size), "float32")]

    @property
    def outputs(self) -> list[TensorSpec]:
        return []

    def _infer(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        centre = (self.size - 1) / 2
        yy, xx = np.mgrid[:self.size, :self.size]
        disc = ((yy - centre) ** 2 + (xx - centre) ** 2 <= self.radius ** 2).astype(np.float32)
        return {"lesion_probability": np.broadcast_to(disc, (len(batch), 1, self.size, self.size)).copy(),
                "class_probabilities": np.tile([1 - self.malignant, self.malignant],
                                               (len(batch), 1)).astype(np.float32)}


def _records(path: Path) -> tuple[dict, list[dict]]:
    header, *records = (json.loads(line) for line in path.read_text().splitlines())
    return header, records


def test_pydicoms_cine_every_frame_in_order_at_its_own_rate_with_its_region_and_mm(tmp_path: Path) -> None:
    """examples_ybr_color.dcm: 30 frames, JPEG baseline, YBR_FULL_422, Frame Time 33.3 ms (OpenCV gave 18 or 19
    of them, from frame 10 or 11, at 25 frames/s)."""
    cine = Path(get_testdata_file("examples_ybr_color.dcm"))
    notes: list[str] = []
    stats = infer_source(str(cine), FakeEngine(), tmp_path / "out.avi", tmp_path / "out.jsonl", progress=False,
                         notify=notes.append)
    header, records = _records(tmp_path / "out.jsonl")
    assert stats.frames_processed == 30 and stats.stopped_early is None
    assert [r["index"] for r in records] == list(range(30))
    assert [r["timestamp"] for r in records] == pytest.approx([i * 0.0333333 for i in range(30)], abs=1e-4)
    # Its 2D tissue region, clamped to the 320x240 matrix (the file states it for a 640x480 one), said once.
    assert all(r["roi"] == [84, 31, 236, 209] for r in records)
    assert any("clamped" in note for note in notes)
    assert all(r["pixel_spacing_mm"] == pytest.approx([0.510497, 0.510497]) for r in records)
    assert all(r["instance"] == 16117 for r in records)
    assert header["source"] == "examples_ybr_color.dcm" and header["source_kind"] == "dicom"
    capture = cv2.VideoCapture(str(tmp_path / "out.avi"))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 30
    assert capture.get(cv2.CAP_PROP_FPS) == pytest.approx(30.0, rel=0.01)
    # Clamped, the region takes in the scanner's blue toolbar (rows 228 on), so the quality gate gives no verdict
    # ("colour"); a --roi above the toolbar keeps the file's calibration, and a lesion gets its size in mm.
    assert {r["status"] for r in records} == {"rejected"} and {r["reason"] for r in records} == {"colour"}
    infer_source(str(cine), DiscEngine(radius=8), None, tmp_path / "roi.jsonl", roi=(84, 31, 236, 190),
                 progress=False)
    _, measured = _records(tmp_path / "roi.jsonl")
    assert len(measured) == 30 and all(r["status"] == "lesion" for r in measured)
    # A disc 16 of 64 model pixels across in a 236-pixel-wide ROI: 59 pixels of 0.5105 mm, about 30 mm.
    assert all(r["lesion_long_axis_mm"] == pytest.approx(16 / 64 * 236 * 0.5105, abs=0.6) for r in measured)


def test_sizes_in_mm_from_the_region_and_from_pixel_spacing(tmp_path: Path) -> None:
    """A disc of radius 16 of 64 model pixels in a 140x74-pixel region at (0.15, 0.125) mm per pixel is an
    ellipse with axes 70 x 37 pixels, that is 8.75 mm wide and 5.55 mm tall: the long axis lies across."""
    frames = [phantom(seed) for seed in range(3)]
    cine = write_dicom(tmp_path / "cine", frames, FrameTime=40.0, instance=3,
                       regions=[{"box": (10, 6, 149, 79), "delta_cm": (0.0125, 0.015)}])
    infer_source(str(cine), DiscEngine(), None, tmp_path / "out.jsonl", progress=False)
    _, records = _records(tmp_path / "out.jsonl")
    assert [r["timestamp"] for r in records] == pytest.approx([0.0, 0.04, 0.08])
    for record in records:
        assert record["roi"] == [10, 6, 140, 74] and record["pixel_spacing_mm"] == pytest.approx([0.15, 0.125])
        assert record["status"] == "lesion" and record["predicted_class"] == "malignant"
        width, height = 32 / 64 * 140, 32 / 64 * 74  # the disc spans 32 of 64 model pixels
        assert record["lesion_long_axis_mm"] == pytest.approx(width * 0.125, abs=0.15)
        assert record["lesion_short_axis_mm"] == pytest.approx(height * 0.15, abs=0.15)
        assert record["lesion_area_mm2"] == pytest.approx(math.pi / 4 * width * height * 0.125 * 0.15, rel=0.05)
    # Uncalibrated (a plain video): null, never a guess; --pixel-spacing calibrates it.
    cv2.imwrite(str(tmp_path / "frame.png"), frames[0])
    infer_source(str(tmp_path / "frame.png"), DiscEngine(), None, tmp_path / "plain.jsonl", progress=False)
    (plain,) = _records(tmp_path / "plain.jsonl")[1]
    assert plain["pixel_spacing_mm"] is None
    assert plain["lesion_long_axis_mm"] is None and plain["lesion_area_mm2"] is None
    infer_source(str(tmp_path / "frame.png"), DiscEngine(), None, tmp_path / "given.jsonl", progress=False,
                 pixel_spacing_mm=parse_pixel_spacing("0.2"))
    (given,) = _records(tmp_path / "given.jsonl")[1]
    assert given["roi"] == [0, 0, 160, 120]
    assert given["lesion_long_axis_mm"] == pytest.approx(32 / 64 * 160 * 0.2, abs=0.3)  # resizing the mask: ±1 px
    assert parse_pixel_spacing("0.1,0.12") == (0.1, 0.12)
    for bad in ("0", "-1", "a,b", "1,2,3"):
        with pytest.raises(CosaEdgeError, match="--pixel-spacing"):
            parse_pixel_spacing(bad)


def test_a_series_is_separate_clips_in_instance_number_order(tmp_path: Path) -> None:
    series = tmp_path / "series"
    series.mkdir()
    write_dicom(series / "b", [phantom(1), phantom(2)], FrameTime=50.0, instance=2)
    write_dicom(series / "a", [phantom(3)], instance=5)
    write_dicom(series / "c", [phantom(4), phantom(5), phantom(6)], FrameTime=50.0, instance=1)
    infer_source(str(series), FakeEngine(), None, tmp_path / "out.jsonl", smoothing=0.5, progress=False)
    header, records = _records(tmp_path / "out.jsonl")
    assert [r["instance"] for r in records] == [1, 1, 1, 2, 2, 5]
    assert [r["index"] for r in records] == list(range(6))
    assert header["source"] == "series" and header["source_kind"] == "dicom_series"
    # The smoother restarts with each instance: the first judged frame of each clip is its own probability.
    for first in (0, 3, 5):
        record = records[first]
        if "smoothed_probabilities" in record:
            assert record["smoothed_probabilities"] == record["class_probabilities"]
    other = tmp_path / "mixed"
    other.mkdir()
    write_dicom(other / "a", [phantom(1)], instance=1)
    write_dicom(other / "b", [phantom(2, size=(100, 120))], instance=2)
    with pytest.raises(CosaEdgeError, match="different sizes"):
        infer_source(str(other), FakeEngine(), None, tmp_path / "mixed.jsonl", progress=False)
    assert not (tmp_path / "mixed.jsonl").exists()


def test_no_patient_attribute_leaves_in_outputs_that_are_not_dicom(tmp_path: Path) -> None:
    """Planted in the header and burned into the image's header bar, as scanners do: neither reaches the JSONL,
    the messages or (outside the region, blanked) the annotated video; --keep-outside-roi keeps the bar."""
    frames = []
    for seed in range(4):
        frame = np.zeros((120, 160), np.uint8)
        frame[20:120, :] = phantom(seed, size=(100, 160))
        cv2.putText(frame, "DOE^JANE PID-123456", (2, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.35, 255, 1)
        frames.append(frame)
    folder = tmp_path / "Doe_Jane_PID-123456"  # exports name folders after patients
    folder.mkdir()
    cine = write_dicom(folder / "Doe_Jane.dcm", frames, FrameTime=40.0, instance=1,
                       regions=[{"box": (0, 20, 159, 119), "delta_cm": (0.01, 0.01)}])
    notes: list[str] = []
    infer_source(str(cine), FakeEngine(), tmp_path / "out.avi", tmp_path / "out.jsonl", progress=False,
                 notify=notes.append)
    text = (tmp_path / "out.jsonl").read_text() + "\n".join(notes)
    for secret in SECRETS:
        if secret not in ("Doe", "Jane"):  # the file is named after her: the header gives file names, see below
            assert secret not in text, secret
    assert "PID-123456" not in text and "Doe_Jane_PID" not in text  # no folder names
    capture = cv2.VideoCapture(str(tmp_path / "out.avi"))
    ok, first = capture.read()
    assert ok and first[:16].max() < 16  # the header bar is blanked (MJPG rings a little next to the image)
    assert first[20:].mean() > 20  # the image is not
    infer_source(str(cine), FakeEngine(), tmp_path / "kept.avi", None, progress=False, keep_outside_roi=True)
    ok, kept = cv2.VideoCapture(str(tmp_path / "kept.avi")).read()
    assert ok and kept[:20].max() > 128  # the burned-in text is still there when asked for


def test_dual_view_region_choice_and_bad_choice(tmp_path: Path) -> None:
    frame = phantom(0, size=(120, 160))
    cine = write_dicom(tmp_path / "dual", [frame], regions=[{"box": (0, 0, 79, 119)}, {"box": (80, 0, 159, 119)}])
    infer_source(str(cine), FakeEngine(), None, tmp_path / "left.jsonl", progress=False)
    infer_source(str(cine), FakeEngine(), None, tmp_path / "right.jsonl", progress=False, region=1)
    assert _records(tmp_path / "left.jsonl")[1][0]["roi"] == [0, 0, 80, 120]
    assert _records(tmp_path / "right.jsonl")[1][0]["roi"] == [80, 0, 80, 120]
    with pytest.raises(CosaEdgeError, match="2D"):
        infer_source(str(cine), FakeEngine(), None, tmp_path / "bad.jsonl", progress=False, region=2)
    # --roi still overrides the file's region.
    infer_source(str(cine), FakeEngine(), None, tmp_path / "given.jsonl", progress=False, roi=(10, 10, 50, 50))
    assert _records(tmp_path / "given.jsonl")[1][0]["roi"] == [10, 10, 50, 50]


def test_roi_auto_finds_the_imaging_area_of_a_recording(tmp_path: Path) -> None:
    """A scanner-like screen recording (static text, a changing frame counter) as an AVI: the region found is the
    one every record names."""
    from cosa_edge.data.phantom import phantom_sweep

    path = tmp_path / "capture.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 20.0, (320, 240))
    for frame in phantom_sweep(3, frames=50, size=(150, 200)):
        canvas = np.full((240, 320, 3), 12, np.uint8)
        canvas[50:200, 60:260] = frame.image[:, :, None]
        cv2.putText(canvas, "ACME US  DOE^JANE", (5, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1)
        cv2.putText(canvas, f"frame {frame.index}", (5, 230), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1)
        writer.write(canvas)
    writer.release()
    notes: list[str] = []
    infer_source(str(path), FakeEngine(), None, tmp_path / "out.jsonl", roi="auto", progress=False,
                 notify=notes.append)
    _, records = _records(tmp_path / "out.jsonl")
    assert len(records) == 50
    x, y, w, h = records[0]["roi"]
    assert abs(x - 60) <= 4 and abs(y - 50) <= 4 and abs(x + w - 260) <= 4 and abs(y + h - 200) <= 4
    assert all(r["roi"] == records[0]["roi"] for r in records)
    assert any("--roi auto" in note for note in notes)


def test_the_phantom_sweep_as_a_dicom_cine(tmp_path: Path) -> None:
    """`cosa-edge phantom --dicom`: a real multi-frame DICOM file that the DICOM path reads back frame for frame."""
    from cosa_edge.data.dicom_phantom import write_sweep_dicom
    from cosa_edge.data.phantom import phantom_sweep
    from cosa_edge.stream.frame_sources import FrameSource

    path = write_sweep_dicom(tmp_path / "sweep.dcm", seed=2, frames=12, size=(96, 128), fps=25.0, spacing_mm=0.2)
    source = FrameSource(str(path))
    assert (source.info.kind, source.info.frame_count, source.info.width, source.info.height) == ("dicom", 12, 128, 96)
    assert source.info.fps == pytest.approx(25.0)
    frames = list(source)
    assert [f.timestamp for f in frames] == pytest.approx([i * 0.04 for i in range(12)])
    for frame, truth in zip(frames, phantom_sweep(2, 12, (96, 128))):
        assert frame.region == (0, 0, 128, 96) and frame.spacing_mm == pytest.approx((0.2, 0.2))
        assert np.abs(frame.image.astype(int) - truth.image).mean() < 3  # JPEG at quality 95
    assert not list(tmp_path.glob(".*partial*"))


def test_results_back_to_the_archive_from_infer(tmp_path: Path) -> None:
    """--dicom-seg for a still (the mask in the source's coordinates), --dicom-sr for a cine (sizes per frame with
    their frame numbers); the wrong kind of source is refused before anything is written."""
    highdicom = pytest.importorskip("highdicom")
    from tests.test_dicom_results import group_image, group_values, measurement_groups

    region = {"box": (10, 6, 149, 79), "delta_cm": (0.0125, 0.015)}
    still = write_dicom(tmp_path / "still.dcm", [phantom(1)], instance=1, regions=[region])
    infer_source(str(still), DiscEngine(), None, None, dicom_seg=tmp_path / "seg.dcm", progress=False)
    segmentation = highdicom.seg.segread(tmp_path / "seg.dcm")
    mask = np.asarray(segmentation.pixel_array).reshape(120, 160).astype(bool)
    truth = np.zeros((120, 160), bool)
    truth[6:80, 10:150] = cv2.resize(DiscEngine()._infer(np.zeros((1, 1, 64, 64)))["lesion_probability"][0, 0],
                                     (140, 74), interpolation=cv2.INTER_LINEAR) > 0.5
    assert (mask == truth).all() and mask.any()

    cine = write_dicom(tmp_path / "cine.dcm", [phantom(s) for s in range(3)], FrameTime=40.0, instance=2,
                       regions=[region])
    infer_source(str(cine), DiscEngine(), None, tmp_path / "cine.jsonl", dicom_sr=tmp_path / "sr.dcm", progress=False)
    _, records = _records(tmp_path / "cine.jsonl")
    groups = measurement_groups(pydicom.dcmread(tmp_path / "sr.dcm"))
    assert len(groups) == 3
    for number, (group, record) in enumerate(zip(groups, records), start=1):
        assert group_image(group).ReferencedFrameNumber == number
        values = {concept: value[1] for concept, value in group_values(group).items()}
        assert values[("SCT", "103339001")] == pytest.approx(record["lesion_long_axis_mm"], abs=0.01)
        assert values[("SCT", "103340004")] == pytest.approx(record["lesion_short_axis_mm"], abs=0.01)

    for kind, options, message in ((cine, {"dicom_seg": tmp_path / "x.dcm"}, "--dicom-sr"),
                                   (tmp_path, {"dicom_sr": tmp_path / "x.dcm"}, "one DICOM file")):
        with pytest.raises(CosaEdgeError, match=message):
            infer_source(str(kind), DiscEngine(), None, tmp_path / "x.jsonl", progress=False, **options)
        assert not (tmp_path / "x.jsonl").exists() and not (tmp_path / "x.dcm").exists()


def test_bad_dicom_input_is_refused_before_any_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A missing decoder, a .dcm that is not DICOM, a structured report, an empty folder: one clear message each,
    and no output file (not even a JSONL with only its header)."""
    cine = write_dicom(tmp_path / "cine.dcm", [phantom(0), phantom(1)], FrameTime=40.0)
    fake = tmp_path / "fake.dcm"
    cv2.imwrite(str(tmp_path / "fake.png"), phantom(0))
    (tmp_path / "fake.png").rename(fake)
    report = write_sr(tmp_path / "report.dcm")
    empty = tmp_path / "empty"
    empty.mkdir()
    cases = [(fake, "not a DICOM Part 10 file"), (report, "holds no image"), (empty, "no DICOM files")]
    for source, message in cases:
        with pytest.raises(CosaEdgeError, match=message):
            infer_source(str(source), FakeEngine(), tmp_path / "o.avi", tmp_path / "o.jsonl", progress=False)
    monkeypatch.setattr(pydicom.pixels, "get_decoder", lambda uid: NoPlugins())
    with pytest.raises(CosaEdgeError, match=r"install it with: pip install 'cosa-edge\[dicom\]'"):
        infer_source(str(cine), FakeEngine(), tmp_path / "o.avi", tmp_path / "o.jsonl", progress=False)
    assert not list(tmp_path.glob("o.*")) and not list(tmp_path.glob(".o.*"))


def test_jpeg_ls_cine_decodes_losslessly(tmp_path: Path) -> None:
    """JPEG-LS lossless (encoded here with pyjpegls, which the dicom extra brings through highdicom; decoded by
    pylibjpeg-libjpeg): every frame exactly as written."""
    from pydicom.uid import ExplicitVRLittleEndian, JPEGLSLossless

    from cosa_edge.data.dicom import DicomImage

    frames = [phantom(seed) for seed in range(3)]
    path = write_dicom(tmp_path / "ls.dcm", frames, syntax=ExplicitVRLittleEndian, FrameTime=40.0)
    dataset = pydicom.dcmread(path)
    dataset.compress(JPEGLSLossless, generate_instance_uid=False)
    dataset.save_as(path, enforce_file_format=True)
    image = DicomImage(path)
    assert image.info.transfer_syntax.startswith("JPEG-LS Lossless")
    decoded = list(image.frames())
    assert len(decoded) == 3 and all(np.array_equal(d, f) for (_, _, d), f in zip(decoded, frames))


def test_training_images_may_be_dicom(tmp_path: Path) -> None:
    """The folder: reader takes images/NAME.dcm beside masks/NAME.png, through the same DICOM reader."""
    from cosa_edge.data import load_dataset

    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    image = phantom(4)
    write_dicom(tmp_path / "images" / "case1.dcm", [image], instance=1)
    mask = np.zeros(image.shape, np.uint8)
    mask[40:70, 60:100] = 255
    cv2.imwrite(str(tmp_path / "masks" / "case1.png"), mask)
    (tmp_path / "labels.csv").write_text("image,label\ncase1.dcm,malignant\n")
    (sample,) = load_dataset(f"folder:{tmp_path}", progress=False)
    assert sample.label == 1 and sample.mask.sum() == 30 * 40
    assert np.abs(sample.image.astype(int) - image).mean() < 3  # JPEG baseline at quality 95


def test_the_overlay_draws_the_long_axis_and_prints_it_in_mm() -> None:
    from cosa_edge.stream.overlay import draw_overlay
    from cosa_edge.stream.postprocess import summarise

    probability = np.zeros((64, 64), np.float32)
    probability[24:40, 8:56] = 1.0  # a bar, 48 x 16 model pixels, across the middle
    frame = np.full((128, 128), 90, np.uint8)
    result = summarise(0, 0.0, probability, np.array([0.4, 0.6]), (0, 0, 128, 128), 1.0, spacing_mm=(0.25, 0.25))
    # The long axis of a 96 x 32 pixel rectangle is its diagonal.
    assert result.size is not None and result.size.long_axis_mm == pytest.approx(np.hypot(96, 32) * 0.25, abs=0.3)
    drawn = draw_overlay(frame, result, (0, 0, 128, 128))
    plain = draw_overlay(frame, summarise(0, 0.0, probability, np.array([0.4, 0.6]), (0, 0, 128, 128), 1.0),
                         (0, 0, 128, 128))
    (x0, y0), (x1, y1) = result.size.long_axis_px
    middle = (int(round((x0 + x1) / 2)), int(round((y0 + y1) / 2)))
    assert (drawn[middle[1], middle[0]] > 200).all()  # the caliper (light, anti-aliased) crosses the middle
    # The uncalibrated frame has the caliper but no "long axis ... mm" line: the rows of that text differ.
    assert (drawn[30:50] != plain[30:50]).any()
