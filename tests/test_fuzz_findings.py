"""What the fuzzing campaign found (docs/fuzzing.md), each fixed and held here: headers that contradict their
data, frame sizes no video holds, and decoder errors passed on in Python's own words.

Real: DICOM files written by pydicom (tests/dicom_files.py) with the header values the fuzzer found, the readers,
the pipeline and its writers. Stand-in: the engine (tests/test_stream.py's FakeEngine).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

pydicom = pytest.importorskip("pydicom")

from pydicom import uid as uids  # noqa: E402

from cosa_edge.data.dicom import DicomImage  # noqa: E402
from cosa_edge.errors import CosaEdgeError  # noqa: E402
from cosa_edge.fuzz.dicom_cases import encapsulate_fragments  # noqa: E402
from cosa_edge.stream.run import infer_source  # noqa: E402
from tests.dicom_files import SECRETS, phantom, write_dicom  # noqa: E402
from tests.test_stream import FakeEngine  # noqa: E402

SHAPE = (32, 48)


def _cine(path: Path, count: int, syntax: str = uids.JPEGBaseline8Bit, **attributes: object) -> Path:
    frames = [cv2.cvtColor(phantom(i, SHAPE), cv2.COLOR_GRAY2BGR) for i in range(count)]
    photometric = "YBR_FULL_422" if syntax == uids.JPEGBaseline8Bit else "RGB"
    return write_dicom(path, frames, syntax=syntax, photometric=photometric, multi_frame=True, FrameTime="40",
                       **attributes)


def _run(source: Path, tmp_path: Path, out: str = "out.mp4") -> tuple[int, list[str]]:
    notes: list[str] = []
    stats = infer_source(str(source), FakeEngine(), tmp_path / out, tmp_path / "out.jsonl", progress=False,
                         notify=notes.append)
    records = (tmp_path / "out.jsonl").read_text().splitlines()[1:]
    assert len(records) == stats.frames_processed
    return stats.frames_processed, notes


# --------------------------------------------------------------------------------------------------
# Number of Frames against the frames in the data: the data is believed, and a note says so


@pytest.mark.parametrize(("stated", "said"), [(0, "says 0"), (None, "is missing"), (41, "says 41"), (7, "says 7")])
def test_number_of_frames_against_40_fragments_all_40_are_read_and_said(stated: int | None, said: str,
                                                                        tmp_path: Path) -> None:
    """Number of Frames 0 on a 40-fragment cine read one frame; missing, it read one frame without a word; 7,
    it dropped 33 frames without a word; 41, it called the whole file truncated."""
    cine = _cine(tmp_path / "cine.dcm", 40)
    dataset = pydicom.dcmread(cine)
    if stated is None:
        del dataset.NumberOfFrames
    else:
        dataset.NumberOfFrames = stated
    dataset.save_as(cine)
    processed, notes = _run(cine, tmp_path)
    assert processed == 40
    assert [note for note in notes if "Number of Frames" in note] == [
        f"note: cine.dcm: Number of Frames {said} but the pixel data holds 40 JPEG frames; all 40 were read"]


def test_number_of_frames_below_the_native_frames_in_the_data(tmp_path: Path) -> None:
    """Uncompressed: 6 whole frames of pixel data under Number of Frames 2 were cut to 2 without a word."""
    cine = _cine(tmp_path / "raw.dcm", 6, syntax=uids.ExplicitVRLittleEndian)
    dataset = pydicom.dcmread(cine)
    dataset.NumberOfFrames = 2
    dataset.save_as(cine)
    image = DicomImage(cine)
    assert image.info.frames == 6 and len(list(image.frames())) == 6
    assert image.info.warnings == ["Number of Frames says 2 but the pixel data holds 6 whole frames; all 6 were read"]


def test_a_truncated_cine_still_says_it_is_truncated(tmp_path: Path) -> None:
    """Believing the data must not turn a cut file into a shorter whole one: the frames before the cut are
    processed and the warning says the file is truncated."""
    cine = _cine(tmp_path / "cine.dcm", 12)
    data = cine.read_bytes()
    cine.write_bytes(data[:len(data) * 2 // 3])
    image = DicomImage(cine)
    frames = list(image.frames())
    assert image.info.frames == 12 and 0 < len(frames) < 12
    assert "truncated" in (image.stopped_early or "")


# --------------------------------------------------------------------------------------------------
# Frame sizes against the data


@pytest.mark.parametrize(("rows", "columns"), [(60000, SHAPE[1]), (SHAPE[0], 1), (0, SHAPE[1])])
def test_rows_and_columns_against_jpeg_frames_the_frames_size_is_believed(rows: int, columns: int,
                                                                          tmp_path: Path) -> None:
    """Rows 60000 or Columns 1 ended in "OpenCV cannot write mp4v video" (the video writer was opened at the
    header's size); the JPEG frames carry their own size, which is read instead, with a note."""
    cine = _cine(tmp_path / "cine.dcm", 5, Rows=rows, Columns=columns)
    processed, notes = _run(cine, tmp_path)
    assert processed == 5
    assert f"note: cine.dcm: Columns x Rows say {columns}x{rows} but the frames are 48x32 (their own JPEG " \
           "headers); they were read as 48x32" in notes
    capture = cv2.VideoCapture(str(tmp_path / "out.mp4"))
    assert (capture.get(cv2.CAP_PROP_FRAME_WIDTH), capture.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (48, 32)


def test_rows_larger_than_the_native_pixel_data_is_a_header_error(tmp_path: Path) -> None:
    """Uncompressed frames have no size of their own: a header that asks for more pixels than the file holds is
    said to be the cause, before any output is opened."""
    cine = _cine(tmp_path / "raw.dcm", 3, syntax=uids.ExplicitVRLittleEndian, Rows=60000)
    with pytest.raises(CosaEdgeError, match=r"raw.dcm has a corrupt header: its pixel data is smaller than one "
                                            r"48x60000 frame") as caught:
        _run(cine, tmp_path)
    assert not any(part in str(caught.value) for part in SECRETS)
    assert not list(tmp_path.glob("*out*"))


@pytest.mark.parametrize("keyword", ["BitsStored", "HighBit", "Columns"])
def test_an_image_pixel_element_with_three_values_is_named(keyword: str, tmp_path: Path) -> None:
    """Bits Stored of three values ended in "'<=' not supported between instances of 'int' and 'list'"."""
    cine = _cine(tmp_path / "raw.dcm", 2, syntax=uids.ExplicitVRLittleEndian)
    dataset = pydicom.dcmread(cine)
    dataset[keyword].value = [8, 8, 8]
    dataset.save_as(cine)
    label = {"BitsStored": "Bits Stored", "HighBit": "High Bit", "Columns": "Columns"}[keyword]
    with pytest.raises(CosaEdgeError, match=f"raw.dcm has a corrupt header: {label} holds 3 values where DICOM "
                                            "allows one"):
        DicomImage(cine)


def test_an_empty_fragment_stops_the_cine_with_a_warning_not_a_traceback(tmp_path: Path) -> None:
    """OpenCV's imdecode asserts on an empty buffer (cv2.error reached the user as a traceback)."""
    cine = _cine(tmp_path / "cine.dcm", 6)
    dataset = pydicom.dcmread(cine)
    from pydicom.encaps import generate_frames

    frames = list(generate_frames(dataset.PixelData, number_of_frames=6))
    frames[3] = b""
    # pydicom will not write an empty frame; the fuzzer's encapsulation will, and its offset table makes frame 4
    # an empty buffer for the decoder.
    dataset.PixelData = encapsulate_fragments(frames, "right")
    dataset.save_as(cine)
    image = DicomImage(cine)
    assert len(list(image.frames())) == 3
    assert image.stopped_early is not None and image.stopped_early.startswith("decoding stopped at frame 4 of")


# --------------------------------------------------------------------------------------------------
# Frames that no video holds


def test_a_source_one_pixel_wide_names_its_frame_size_not_the_writer(tmp_path: Path) -> None:
    """An mp4v video cannot hold frames 1 pixel wide; the error said only "OpenCV cannot write mp4v video"."""
    image = tmp_path / "strip.png"
    cv2.imwrite(str(image), np.full((48, 1), 90, np.uint8))
    folder = tmp_path / "strips"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.png"), np.full((48, 1), 90, np.uint8))
    with pytest.raises(CosaEdgeError, match=r"cannot write out.mp4: mp4v video cannot hold the source's frames of "
                                            r"1x48 pixels; write an .avi \(MJPG\) instead"):
        _run(folder, tmp_path)
    assert not [path.name for path in tmp_path.iterdir() if path.name.startswith(".out")]
    processed, _ = _run(folder, tmp_path, out="out.avi")
    assert processed == 1


def test_json_results_of_a_believed_cine_hold_every_frame_in_order(tmp_path: Path) -> None:
    cine = _cine(tmp_path / "cine.dcm", 9, NumberOfFrames=0)
    _run(cine, tmp_path)
    records = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()[1:]]
    assert [record["index"] for record in records] == list(range(9))
    assert [record["timestamp"] for record in records] == pytest.approx([i * 0.04 for i in range(9)])


def test_a_frame_rate_no_mp4_holds_names_the_rate(tmp_path: Path) -> None:
    """Cine Rate 100000: mp4v's time base holds at most 65535 frames/s; the error said only "OpenCV cannot write
    mp4v video"."""
    cine = _cine(tmp_path / "cine.dcm", 3, CineRate=100000)
    del_frame_time = pydicom.dcmread(cine)
    del del_frame_time.FrameTime  # Frame Time comes before Cine Rate; without it, the rate is the cine's
    del_frame_time.save_as(cine)
    with pytest.raises(CosaEdgeError, match=r"cannot write out.mp4: mp4v video cannot hold the source's frame rate "
                                            r"of 100000 frames/s; write an .avi \(MJPG\) instead"):
        _run(cine, tmp_path)
    assert _run(cine, tmp_path, out="out.avi")[0] == 3


@pytest.mark.parametrize(("raw", "said"), [(b"h\x8f", r"is not a number \(its pixel data holds 4 JPEG frames\)"),
                                          (b"\x00 ", "is empty")])
def test_a_number_of_frames_that_is_no_number_is_named(raw: bytes, said: str, tmp_path: Path) -> None:
    """Raw bytes for Number of Frames (or none at all) ended in "invalid literal for int() with base 10" from inside
    pydicom."""
    cine = _cine(tmp_path / "cine.dcm", 4)
    dataset = pydicom.dcmread(cine)
    from pydicom.dataelem import DataElement

    element = DataElement(dataset["NumberOfFrames"].tag, "OB", raw)
    element.VR = "UN"  # as a scanner's private encoding would carry it
    dataset["NumberOfFrames"] = element
    dataset.save_as(cine)
    with pytest.raises(CosaEdgeError, match=f"cine.dcm has a corrupt header: Number of Frames {said}; export it again"):
        DicomImage(cine)


@pytest.mark.parametrize(("offset", "value"), [(18, 2**31 - 1), (22, 2**31 - 1), (18, 60000)])
def test_an_image_header_past_opencvs_limits_is_a_clear_error(offset: int, value: int, tmp_path: Path) -> None:
    """A BMP whose width or height field says 2^31 - 1: OpenCV asserts (cv2.error reached the user as a
    traceback) instead of returning None as it does for other damage."""
    from cosa_edge.data.imageio import read_frame

    image = tmp_path / "scan.bmp"
    cv2.imwrite(str(image), phantom(0, SHAPE))
    data = bytearray(image.read_bytes())
    data[offset:offset + 4] = value.to_bytes(4, "little")
    if offset == 18 and value == 60000:
        data[22:26] = (60000).to_bytes(4, "little")  # 60000 x 60000: past the pixel-count limit
    image.write_bytes(bytes(data))
    with pytest.raises(CosaEdgeError, match="cannot decode image .*scan.bmp: its header states a size larger than "
                                            "OpenCV reads"):
        read_frame(image)


@pytest.mark.parametrize(("key", "value", "said"), [
    ("presence", '"abc"', 'presence is "abc", not a JSON dict'),
    ("input_size", "3.5", "input_size is 3.5, not a JSON int"),
    ("class_names", "5", "class_names is 5, not a JSON list"),
    ("calibration", '{"temperature": 0}', "calibration.temperature is 0"),
    ("ood", '{"threshold": "x"}', 'ood.threshold is "x"'),
])
def test_engine_metadata_of_the_wrong_type_is_refused_on_load(key: str, value: str, said: str,
                                                              tmp_path: Path) -> None:
    """The graph hash leaves the metadata out, so a value of the wrong type passed the check and failed in the
    pipeline with a traceback ("'str' object has no attribute 'get'", "Can't parse 'dsize'")."""
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from cosa_edge.engines.onnxruntime_engine import OnnxRuntimeEngine
    from cosa_edge.fuzz.engine import write_tiny_engine

    path = write_tiny_engine(tmp_path / "engine.onnx")
    model = onnx.load(str(path))
    for entry in model.metadata_props:
        if entry.key == f"cosa_edge.{key}":
            entry.value = value
    onnx.save(model, str(path))
    with pytest.raises(CosaEdgeError, match=f"engine.onnx has unreadable cosa-edge metadata: {re.escape(said)}"):
        OnnxRuntimeEngine(path)


def test_a_region_spacing_that_cannot_be_right_is_ignored_and_said(tmp_path: Path) -> None:
    """Physical Delta X of 5e-324 cm made measuring a lesion's short axis an OverflowError traceback."""
    from tests.dicom_files import TISSUE

    region = {"box": TISSUE["box"], "delta_cm": (5e-324, 0.01)}
    cine = write_dicom(tmp_path / "cine.dcm", [phantom(i, (120, 160)) for i in range(3)], regions=[region],
                       FrameTime="40")
    processed, notes = _run(cine, tmp_path)
    assert processed == 3
    assert any("states a physical spacing of 4.94066e-324 x 0.01 cm a pixel, which cannot be right" in note
               for note in notes), notes
    records = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()[1:]]
    assert all(record["pixel_spacing_mm"] is None for record in records)


def test_a_pixel_spacing_option_too_small_to_be_real_is_refused() -> None:
    from cosa_edge.stream.run import parse_pixel_spacing

    with pytest.raises(CosaEdgeError, match="--pixel-spacing '1e-300' must be MM or DY,DX"):
        parse_pixel_spacing("1e-300")
    assert parse_pixel_spacing("0.1") == (0.1, 0.1)


@pytest.mark.parametrize(("content", "said"), [(b"\xe9mage,label\n", "is not UTF-8 text \\(byte 0xe9 at position 0\\)"),
                                               (b'image,label\n"' + b"x" * 200_000 + b'",benign\n',
                                                "is not a readable CSV file \\(field larger than field limit")])
def test_a_labels_file_that_is_no_utf8_csv_is_named(content: bytes, said: str, tmp_path: Path) -> None:
    """A labels.csv with one byte changed ended in UnicodeDecodeError's traceback."""
    from cosa_edge.data.folder import load_folder, write_folder
    from cosa_edge.data.phantom import make_phantom_dataset

    write_folder(make_phantom_dataset(2, size=SHAPE), tmp_path / "data")
    (tmp_path / "data" / "labels.csv").write_bytes(content)
    with pytest.raises(CosaEdgeError, match=f"labels.csv {said}"):
        load_folder(tmp_path / "data", progress=False)


def test_a_labels_row_cut_short_is_named(tmp_path: Path) -> None:
    """A labels.csv cut in the middle of its last row ended in "'NoneType' object has no attribute 'strip'"."""
    from cosa_edge.data.folder import load_folder, write_folder
    from cosa_edge.data.phantom import make_phantom_dataset

    write_folder(make_phantom_dataset(2, size=SHAPE), tmp_path / "data")
    labels = tmp_path / "data" / "labels.csv"
    labels.write_text("image,label\nphantom_00000.png,benign\nphantom_00001.p\n")
    with pytest.raises(CosaEdgeError, match="labels.csv, line 3: no image name or no label"):
        load_folder(tmp_path / "data", progress=False)


def _with(text: str, record: str, key: str, value: object) -> str:
    """The sidecar's JSON with ``record[key]`` set to ``value`` (None: the key taken out of the metadata)."""
    document = json.loads(text)
    if record == "metadata" and value is None:
        del document[record][key]
    else:
        document[record][key] = value
    return json.dumps(document)


@pytest.mark.parametrize(("change", "said"), [
    (lambda text: text.replace('"build": {', '"build": "x", "old": {'), 'its "build" is not an object'),
    (lambda text: "[]", "its JSON is not an object"),
    (lambda text: text.replace('"cosa_edge.input_size": "32"', '"cosa_edge.input_size": 32'),
     "unreadable cosa-edge metadata: input_size is not JSON text"),
    # Found by the larger campaign after the first fixes: a hash of another type switched the check off (a
    # falsy one) or failed in slicing it, a version that was no text failed in .split, a missing key in __init__.
    (lambda text: _with(text, "build", "xml_sha256", False), "records an unreadable hash (false, not text)"),
    (lambda text: _with(text, "build", "bin_sha256", 5), "records an unreadable hash (5, not text)"),
    (lambda text: _with(text, "build", "openvino_version", None), "records no readable OpenVINO version"),
    (lambda text: _with(text, "metadata", "cosa_edge.encoder", None),
     "unreadable cosa-edge metadata: it lacks encoder"),
])
def test_an_openvino_sidecar_of_the_wrong_shape_is_refused(change, said: str, tmp_path: Path) -> None:  # noqa: ANN001
    """The sidecar holds the hashes, so nothing checks it before it is read: a "build" that was a string ended in
    "'str' object has no attribute 'get'", metadata that was not text in json's TypeError."""
    pytest.importorskip("openvino")
    from cosa_edge.backends import open_engine
    from cosa_edge.contract import ModelMetadata
    from cosa_edge.engines.artifact import read_verified_onnx, scan_onnx
    from cosa_edge.engines.openvino_engine import build_openvino
    from cosa_edge.fuzz.engine import write_tiny_engine

    onnx_engine = write_tiny_engine(tmp_path / "tiny.onnx")
    metadata = ModelMetadata.from_props(scan_onnx(read_verified_onnx(onnx_engine))[1], "tiny.onnx")
    build_openvino(onnx_engine, tmp_path / "model.xml", metadata, "fp32")
    sidecar = tmp_path / "model.xml.json"
    changed = change(sidecar.read_text())
    assert changed != sidecar.read_text()
    sidecar.write_text(changed)
    with pytest.raises(CosaEdgeError, match=re.escape(said)):
        open_engine(tmp_path / "model.xml")


def test_an_openvino_sidecar_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    pytest.importorskip("openvino")
    from cosa_edge.engines.openvino_engine import read_sidecar

    (tmp_path / "model.xml").write_text("<net/>")
    (tmp_path / "model.xml.json").write_bytes(b'{"build": "\xe9"}')
    with pytest.raises(CosaEdgeError, match=r"model.xml.json is not UTF-8 text \(byte 0xe9 at position 11\)"):
        read_sidecar(tmp_path / "model.xml")


def test_an_element_of_an_unknown_vr_is_a_corrupt_header(tmp_path: Path) -> None:
    """SOP Class UID with VR "UU" (two bits flipped): pydicom raised NotImplementedError when the element was
    first read, which was outside the reader's guard (found by atheris)."""
    still = write_dicom(tmp_path / "still.dcm", [phantom(0, SHAPE)], syntax=uids.ExplicitVRLittleEndian)
    data = still.read_bytes()
    tag = b"\x08\x00\x16\x00UI"  # (0008,0016) SOP Class UID, explicit VR UI
    assert data.count(tag) == 1
    still.write_bytes(data.replace(tag, b"\x08\x00\x16\x00UU"))
    with pytest.raises(CosaEdgeError, match="still.dcm has a corrupt header \\(Unknown Value Representation 'UU'"):
        DicomImage(still)


def test_a_cut_cine_without_number_of_frames_says_it_is_truncated(tmp_path: Path) -> None:
    """With no Number of Frames to fall short of, a cut cine read as its whole frames would look complete."""
    cine = _cine(tmp_path / "cine.dcm", 12)
    dataset = pydicom.dcmread(cine)
    del dataset.NumberOfFrames
    dataset.save_as(cine)
    data = cine.read_bytes()
    cine.write_bytes(data[:len(data) * 2 // 3])
    image = DicomImage(cine)
    whole = image.info.frames - 1
    assert image.info.warnings == [f"Number of Frames is missing; the pixel data holds {whole} whole JPEG frames "
                                   "before the file ends (it is truncated)"]
    decoded = len(list(image.frames()))
    # As against a stated count: the decoder reads ahead into the cut frame while it reads the last whole one,
    # so that one may be lost too; the warning says so with the number processed.
    assert decoded in (whole - 1, whole)
    assert image.stopped_early == (f"decoding stopped at frame {decoded + 1} of {whole + 1}: the file ends inside "
                                   f"this frame (it is truncated); the {decoded} frames before it were processed")


def test_a_tensorrt_sidecar_with_no_readable_compute_capability_is_refused() -> None:
    from cosa_edge.engines.tensorrt_engine import check_compatible

    with pytest.raises(CosaEdgeError, match="m.engine's sidecar records no readable compute capability"):
        check_compatible({"tensorrt_version": "11.4", "compute_capability": 5}, "11.4", "GPU", (8, 9),
                         Path("m.engine"))
