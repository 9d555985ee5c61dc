"""DICOM ultrasound: pydicom's own example files, and files written here from synthetic phantom frames."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

pytest.importorskip("pydicom")

import pydicom.pixels
from pydicom import uid as uids
from pydicom.data import get_testdata_file
from pydicom.encaps import encapsulate

from cosa_edge.data.dicom import (
    DicomImage,
    DicomInfo,
    UltrasoundRegion,
    dicom_series,
    is_dicom,
    read_dicom_grey,
    tissue_region,
    ultrasound_regions,
)
from cosa_edge.errors import CosaEdgeError

from tests.dicom_files import (
    DOPPLER, SECRETS, TISSUE, NoPlugins, jpeg, phantom, write_dicom, write_sr,
)

def every_frame(image: DicomImage) -> list[tuple[int, float, np.ndarray]]:
    return list(image.frames())


def assert_clean(text: str, tmp_path: Path | None = None) -> None:
    """No planted patient attribute and no folder in ``text``."""
    for secret in SECRETS:
        assert secret not in text, f"{secret!r} leaked into {text!r}"
    if tmp_path is not None:
        assert str(tmp_path) not in text


def example(name: str) -> Path:
    """One of pydicom's installed example files (these four names are installed; others would be downloaded)."""
    assert name in {"examples_ybr_color.dcm", "examples_palette.dcm", "examples_jpeg2k.dcm", "examples_rgb_color.dcm"}
    return Path(get_testdata_file(name))


# ----------------------------------------------------------------------------------------------------------
# Detection


def test_is_dicom_by_content_not_suffix(tmp_path: Path) -> None:
    dicom = write_dicom(tmp_path / "IMG0001", [phantom(0, (32, 48))], syntax=uids.ExplicitVRLittleEndian)
    png = tmp_path / "fake.dcm"
    cv2.imwrite(str(tmp_path / "real.png"), phantom(1, (32, 48)))
    (tmp_path / "real.png").rename(png)
    (tmp_path / "short").write_bytes(b"\0" * 100)
    assert is_dicom(dicom)
    assert not is_dicom(png)
    assert not is_dicom(tmp_path / "short")
    assert not is_dicom(tmp_path / "missing.dcm")
    assert not is_dicom(tmp_path)
    with pytest.raises(CosaEdgeError, match="fake.dcm is not a DICOM file"):
        DicomImage(png)


# ----------------------------------------------------------------------------------------------------------
# pydicom's own ultrasound files


def test_pydicom_ybr_cine_streams_every_frame_in_order() -> None:
    path = example("examples_ybr_color.dcm")
    image = DicomImage(path)
    info = image.info
    assert (info.frames, info.rows, info.columns) == (30, 240, 320)
    assert info.photometric == "YBR_FULL_422" and info.transfer_syntax == "JPEG Baseline (Process 1)"
    assert info.timing_source == "frame_time" and info.fps == pytest.approx(30.0, rel=1e-3)
    frames = every_frame(image)
    assert [index for index, _, _ in frames] == list(range(30))
    assert [stamp for _, stamp, _ in frames] == pytest.approx([i * 0.033333 for i in range(30)])
    assert image.stopped_early is None
    for _, _, frame in frames:
        assert frame.dtype == np.uint8 and frame.shape == (240, 320, 3) and frame.flags.c_contiguous
    for index in (0, 29):  # pydicom's own decoding (RGB), in OpenCV's BGR order: OpenCV's JPEG decoder (the fast
        # path) rounds the inverse DCT and the chroma upsampling a little differently, by 3 grey levels at most
        reference = pydicom.pixels.pixel_array(path, index=index)[..., ::-1].astype(int)
        difference = np.abs(frames[index][2].astype(int) - reference)
        assert image._fast_ok and difference.mean() < 0.1 and difference.max() <= 3
    assert not np.array_equal(frames[0][2], frames[29][2])
    # The file's one region is the 2D tissue image of a 640x480 scan, kept when the frames were shrunk to
    # 320x240: it reaches past the matrix and is clamped, with a warning.
    assert info.regions == [UltrasoundRegion(index=0, x=84, y=31, w=236, h=209, spatial_format=1, data_type=1,
                                             spacing_mm=pytest.approx((0.5104970559477806,) * 2), clamped=True)]
    assert info.warnings == ["region 0 (2D, tissue) reached past the 320x240 pixel matrix and was clamped "
                             "to x 84-319, y 31-239"]
    assert tissue_region(info.regions) == info.regions[0]
    grey = read_dicom_grey(path)
    assert grey.shape == (240, 320) and np.array_equal(grey, cv2.cvtColor(frames[0][2], cv2.COLOR_BGR2GRAY))


def test_pydicom_palette_still_tissue_region_and_lookup_table() -> None:
    path = example("examples_palette.dcm")
    image = DicomImage(path)
    info = image.info
    assert (info.frames, info.rows, info.columns, info.photometric) == (1, 350, 800, "PALETTE COLOR")
    assert info.timing_source == "none" and info.fps is None and info.timestamps == [0.0]
    # Two regions: a 2D tissue image (60..518 of 350 rows, 120..800 of 800 columns: clamped) and an ECG
    # waveform strip (format 4, data type 10) at rows 522..576, wholly below the 350-row matrix: dropped.
    assert len(info.regions) == 1
    tissue = tissue_region(info.regions)
    assert tissue is not None and tissue.is_tissue_2d and tissue.index == 0
    assert tissue.roi == (120, 60, 680, 290) and tissue.clamped
    assert tissue.spacing_mm == pytest.approx((0.2622878766196998, 0.2622878766196998))  # 0.02623 cm
    assert any("region 1 (waveform, ECG trace) lies wholly outside" in note for note in info.warnings)
    assert any("region 0 (2D, tissue) reached past the 800x350" in note for note in info.warnings)
    [(index, stamp, frame)] = every_frame(image)
    assert (index, stamp, frame.dtype, frame.shape) == (0, 0.0, np.uint8, (350, 800, 3))
    header = pydicom.dcmread(path, stop_before_pixels=True)
    rgb16 = pydicom.pixels.apply_color_lut(pydicom.pixels.pixel_array(path), header)
    assert rgb16.dtype == np.uint16  # 16-bit table entries: the high byte is the 8-bit colour
    assert np.array_equal(frame, (rgb16 >> 8).astype(np.uint8)[..., ::-1])


@pytest.mark.parametrize("name, shape", [("examples_jpeg2k.dcm", (480, 640, 3)),
                                         ("examples_rgb_color.dcm", (240, 320, 3))])
def test_pydicom_colour_stills_arrive_as_bgr(name: str, shape: tuple[int, int, int]) -> None:
    path = example(name)
    image = DicomImage(path)
    assert image.info.regions == [] and tissue_region(image.info.regions) is None
    [(_, _, frame)] = every_frame(image)
    assert frame.shape == shape and frame.dtype == np.uint8
    assert np.array_equal(frame, pydicom.pixels.pixel_array(path)[..., ::-1])  # YBR_RCT / RGB -> BGR


# ----------------------------------------------------------------------------------------------------------
# Files written here


def test_jpeg_cine_frames_timing_regions(tmp_path: Path) -> None:
    originals = [phantom(seed) for seed in range(8)]
    path = write_dicom(tmp_path / "cine.dcm", originals, regions=[TISSUE, DOPPLER], instance=7,
                       FrameTime=40.0, FrameIncrementPointer=0x00181063)
    image = DicomImage(path)
    info = image.info
    assert (info.frames, info.rows, info.columns, info.instance_number) == (8, 120, 160, 7)
    assert (info.photometric, info.transfer_syntax) == ("MONOCHROME2", "JPEG Baseline (Process 1)")
    assert info.timing_source == "frame_time" and info.fps == pytest.approx(25.0)
    frames = every_frame(image)
    assert [index for index, _, _ in frames] == list(range(8))
    assert [stamp for _, stamp, _ in frames] == pytest.approx([0.04 * i for i in range(8)])
    for index, _, frame in frames:
        assert frame.dtype == np.uint8 and frame.shape == (120, 160)
        errors = [np.abs(frame.astype(int) - original).mean() for original in originals]
        assert int(np.argmin(errors)) == index and errors[index] < 3.0  # its own frame, not a neighbour
    # Regions: inclusive corners, so 10..149 is 140 pixels wide; spacing (dy, dx) in mm from cm.
    tissue, doppler = info.regions
    assert tissue.roi == (10, 6, 140, 74) and not tissue.clamped and tissue.is_tissue_2d
    assert tissue.spacing_mm == pytest.approx((0.15, 0.125))
    assert (doppler.spatial_format, doppler.data_type, doppler.roi) == (3, 3, (0, 84, 160, 36))
    assert doppler.spacing_mm is None and not doppler.is_tissue_2d  # seconds and cm/s are not distances
    assert tissue_region(info.regions) == tissue
    assert tissue_region([doppler]) is None  # a Doppler strip is never the tissue image
    assert info.warnings == [] and image.stopped_early is None
    assert ultrasound_regions(pydicom.dcmread(path, stop_before_pixels=True)) == info.regions


def test_dual_view_regions_and_choice(tmp_path: Path) -> None:
    left = {"box": (0, 0, 79, 89), "delta_cm": (0.02, 0.02)}
    right = {"box": (80, 0, 159, 89), "delta_cm": (0.03, 0.03)}
    colour = {"box": (20, 10, 60, 50), "spatial": 1, "data_type": 2}  # colour flow inside the left view
    path = write_dicom(tmp_path / "dual", [phantom(3)], syntax=uids.ExplicitVRLittleEndian,
                       regions=[DOPPLER, colour, left, right])
    regions = DicomImage(path).info.regions
    assert [region.index for region in regions] == [0, 1, 2, 3]
    assert tissue_region(regions).roi == (0, 0, 80, 90)
    assert tissue_region(regions, 0).index == 2
    chosen = tissue_region(regions, 1)
    assert chosen.index == 3 and chosen.roi == (80, 0, 80, 90) and chosen.spacing_mm == pytest.approx((0.3, 0.3))
    with pytest.raises(CosaEdgeError, match="has 2 2D tissue regions; choose 0 to 1"):
        tissue_region(regions, 2)
    with pytest.raises(CosaEdgeError, match="has 2 2D tissue regions"):
        tissue_region(regions, -1)
    with pytest.raises(CosaEdgeError, match="no 2D tissue region"):
        tissue_region([regions[0]], 0)


def test_regions_clamped_and_dropped(tmp_path: Path) -> None:
    regions = [{"box": (100, 50, 400, 300)}, {"box": (500, 10, 600, 20), "spatial": 3, "data_type": 3}]
    path = write_dicom(tmp_path / "still.dcm", [phantom(4)], syntax=uids.ExplicitVRLittleEndian, regions=regions,
                       PixelSpacing=[0.2, 0.25])
    info = DicomImage(path).info
    [region] = info.regions
    assert region.roi == (100, 50, 60, 70) and region.clamped
    assert info.pixel_spacing_mm == pytest.approx((0.2, 0.25))
    assert info.warnings == ["region 0 (2D, tissue) reached past the 160x120 pixel matrix and was clamped to "
                             "x 100-159, y 50-119",
                             "region 1 (spectral, PW spectral Doppler) lies wholly outside the 160x120 pixel "
                             "matrix and was dropped"]


@pytest.mark.parametrize("attributes, source, fps, stamps", [
    ({"FrameTimeVector": [0, 30, 50, 40, 60], "FrameIncrementPointer": 0x00181065}, "frame_time_vector",
     1000 / 45, [0.0, 0.03, 0.08, 0.12, 0.18]),
    ({"CineRate": 20, "FrameIncrementPointer": 0x00182002}, "cine_rate", 20.0, [0.0, 0.05, 0.1, 0.15, 0.2]),
    ({"FrameTime": 50.0, "CineRate": 30, "FrameTimeVector": [0, 10, 10, 10, 10]}, "frame_time", 20.0,
     [0.0, 0.05, 0.1, 0.15, 0.2]),
    ({}, "none", None, [0.0] * 5),
])
def test_timing_tags(tmp_path: Path, attributes: dict[str, Any], source: str, fps: float | None,
                     stamps: list[float]) -> None:
    path = write_dicom(tmp_path / "t.dcm", [phantom(i, (32, 48)) for i in range(5)],
                       syntax=uids.ExplicitVRLittleEndian, **attributes)
    image = DicomImage(path)
    assert image.info.timing_source == source
    assert image.info.fps == (None if fps is None else pytest.approx(fps))
    assert image.info.timestamps == pytest.approx(stamps)
    assert [stamp for _, stamp, _ in image.frames()] == pytest.approx(stamps)
    assert any("no frame timing" in note for note in image.info.warnings) == (source == "none")


def test_still_without_timing(tmp_path: Path) -> None:
    info = DicomImage(write_dicom(tmp_path / "s", [phantom(1, (32, 48))], syntax=uids.ExplicitVRLittleEndian)).info
    assert (info.frames, info.fps, info.timestamps, info.timing_source, info.warnings) == (1, None, [0.0], "none", [])


def test_monochrome1_inverted_and_high_bit_depth_scaled(tmp_path: Path) -> None:
    stored = phantom(5, (40, 56))
    mono1 = write_dicom(tmp_path / "m1", [stored], syntax=uids.ExplicitVRLittleEndian, photometric="MONOCHROME1")
    assert np.array_equal(read_dicom_grey(mono1), 255 - stored)  # higher = brighter
    twelve = (stored.astype(np.uint16) * 16 + 15)  # 12-bit values 15..4095
    deep = write_dicom(tmp_path / "m12", [twelve], syntax=uids.ExplicitVRLittleEndian, bits=12)
    expected = np.clip(np.rint(twelve * (255 / 4095)), 0, 255).astype(np.uint8)  # by the bit depth, not min/max
    assert np.array_equal(read_dicom_grey(deep), expected)
    deep1 = write_dicom(tmp_path / "m12i", [twelve], syntax=uids.ExplicitVRLittleEndian, bits=12,
                        photometric="MONOCHROME1")
    assert np.array_equal(read_dicom_grey(deep1), 255 - expected)
    ramp = np.tile(np.arange(0, 4096, 64, dtype=np.uint16), (4, 1))
    windowed = write_dicom(tmp_path / "win", [ramp], syntax=uids.ExplicitVRLittleEndian, bits=12,
                           WindowCenter=2048, WindowWidth=1024)
    grey = read_dicom_grey(windowed)[0]
    assert grey[ramp[0] <= 1535].max() == 0 and grey[ramp[0] >= 2560].min() == 255
    assert grey[list(ramp[0]).index(2048)] == pytest.approx(128, abs=1)


def test_uncompressed_rgb_and_rle(tmp_path: Path) -> None:
    grey = phantom(6)
    rgb = np.dstack([grey, grey // 2, 255 - grey])
    path = write_dicom(tmp_path / "rgb.dcm", [rgb], syntax=uids.ExplicitVRLittleEndian)
    [(_, _, frame)] = every_frame(DicomImage(path))
    assert np.array_equal(frame, rgb[..., ::-1]) and frame[0, 0, 0] == rgb[0, 0, 2]  # BGR
    assert np.array_equal(read_dicom_grey(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))
    originals = [phantom(seed, (48, 64)) for seed in range(3)]
    rle = write_dicom(tmp_path / "rle.dcm", originals, syntax=uids.RLELossless, CineRate=10)
    image = DicomImage(rle)
    assert image.info.transfer_syntax == "RLE Lossless"
    frames = every_frame(image)
    assert len(frames) == 3 and all(np.array_equal(f, o) for (_, _, f), o in zip(frames, originals))
    rle_rgb = write_dicom(tmp_path / "rle_rgb.dcm", [rgb], syntax=uids.RLELossless)
    assert np.array_equal(next(DicomImage(rle_rgb).frames())[2], rgb[..., ::-1])


def test_series_sorted_by_instance_number(tmp_path: Path) -> None:
    folder = tmp_path / "Doe_Jane_PID-123456"  # exports name folders after patients: never in messages
    folder.mkdir()
    write_dicom(folder / "zz9", [phantom(1, (40, 56))], syntax=uids.ExplicitVRLittleEndian, instance=1)
    write_dicom(folder / "a.dcm", [phantom(2, (48, 64))] * 2, syntax=uids.ExplicitVRLittleEndian, instance=3,
                FrameTime=50.0)
    write_dicom(folder / "m.DCM", [phantom(3, (40, 56))], instance=2)
    write_dicom(folder / "0000", [phantom(4, (40, 56))], syntax=uids.ExplicitVRLittleEndian)  # no Instance Number
    write_sr(folder / "report.dcm")  # a report beside the images: skipped
    cv2.imwrite(str(folder / "screen.png"), phantom(5, (40, 56)))
    (folder / "notes.txt").write_text("not DICOM")
    series = dicom_series(folder)
    assert [image.info.name for image in series] == ["zz9", "m.DCM", "a.dcm", "0000"]
    assert [image.info.instance_number for image in series] == [1, 2, 3, None]
    assert [(image.info.rows, image.info.frames) for image in series] == [(40, 1), (40, 1), (48, 2), (40, 1)]
    assert [len(list(image.frames())) for image in series] == [1, 1, 2, 1]  # each its own stream


def test_series_folder_errors(tmp_path: Path) -> None:
    empty = tmp_path / "Doe_Jane"
    empty.mkdir()
    with pytest.raises(CosaEdgeError, match="holds no DICOM files") as caught:
        dicom_series(empty)
    assert "Doe" not in str(caught.value)
    (empty / "x.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 200)
    with pytest.raises(CosaEdgeError, match="holds no DICOM files"):
        dicom_series(empty)
    write_sr(empty / "sr.dcm")
    with pytest.raises(CosaEdgeError, match="no image among them"):
        dicom_series(empty)
    with pytest.raises(CosaEdgeError, match="not a folder"):
        dicom_series(empty / "x.png")


# ----------------------------------------------------------------------------------------------------------
# Bad input


def test_no_pixel_data(tmp_path: Path) -> None:
    with pytest.raises(CosaEdgeError, match="report.dcm holds no image .*Basic Text SR Storage") as caught:
        DicomImage(write_sr(tmp_path / "report.dcm"))
    assert_clean(str(caught.value), tmp_path)
    header_only = write_dicom(tmp_path / "empty.dcm", [phantom(0, (32, 48))], syntax=uids.ExplicitVRLittleEndian,
                              pixels=False)
    image = DicomImage(header_only)  # the header describes an image ...
    with pytest.raises(CosaEdgeError, match="empty.dcm holds no image"):
        next(image.frames())  # ... but there is none
    with pytest.raises(CosaEdgeError, match="holds no image"):
        read_dicom_grey(header_only)


def test_not_dicom_and_corrupt_header(tmp_path: Path) -> None:
    with pytest.raises(CosaEdgeError, match="gone.dcm does not exist"):
        DicomImage(tmp_path / "gone.dcm")
    text = tmp_path / "notes.dcm"
    text.write_text("hello " * 100)
    with pytest.raises(CosaEdgeError, match="notes.dcm is not a DICOM file"):
        DicomImage(text)
    good = write_dicom(tmp_path / "good.dcm", [phantom(0, (32, 48))], syntax=uids.ExplicitVRLittleEndian).read_bytes()
    for cut in (140, 300, 420):  # inside the file meta, after it, inside the dataset's header
        (tmp_path / "cut.dcm").write_bytes(good[:cut])
        with pytest.raises(CosaEdgeError, match="cut.dcm has a corrupt or truncated DICOM header") as caught:
            DicomImage(tmp_path / "cut.dcm")
        assert_clean(str(caught.value), tmp_path)
    (tmp_path / "garbage.dcm").write_bytes(b"\0" * 128 + b"DICM" + np.random.default_rng(0).bytes(600))
    with pytest.raises(CosaEdgeError, match="garbage.dcm has a corrupt or truncated DICOM header"):
        DicomImage(tmp_path / "garbage.dcm")


@pytest.mark.parametrize("syntax", [uids.JPEGBaseline8Bit, uids.ExplicitVRLittleEndian])
def test_truncated_cine_yields_frames_before_the_cut(tmp_path: Path, syntax: str) -> None:
    originals = [phantom(seed, (64, 80)) for seed in range(10)]
    whole = write_dicom(tmp_path / "whole.dcm", originals, syntax=syntax, FrameTime=40.0)
    reference = [frame for _, _, frame in DicomImage(whole).frames()]
    data = whole.read_bytes()
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(data[:int(len(data) * 0.55)])  # the file ends inside frame 6 (index 5) or so
    image = DicomImage(cut)
    assert image.info.frames == 10  # the header still says 10
    frames = every_frame(image)
    count = len(frames)
    assert 3 <= count <= 7
    assert all(np.array_equal(frame, reference[index]) for index, _, frame in frames)  # no half frame
    assert image.stopped_early == (f"decoding stopped at frame {count + 1} of 10: the file ends inside this "
                                   f"frame (it is truncated); the {count} frames before it were processed")
    assert_clean(image.stopped_early, tmp_path)
    cut.write_bytes(data[:len(data) // 20])  # the header and half of the first frame
    with pytest.raises(CosaEdgeError, match="no frame of cut.dcm could be decoded"):
        list(DicomImage(cut).frames())


def test_corrupt_frame_in_the_middle(tmp_path: Path) -> None:
    originals = [phantom(seed, (48, 64)) for seed in range(6)]
    encoded = [jpeg(frame) for frame in originals]
    encoded[4] = b"\xff\xd8" + np.random.default_rng(1).bytes(len(encoded[4]) - 2)  # garbage after SOI
    path = write_dicom(tmp_path / "bad.dcm", originals, pixels=False, FrameTime=40.0)
    ds = pydicom.dcmread(path)
    ds.PixelData = encapsulate(encoded)
    ds["PixelData"].VR = "OB"
    ds.save_as(path, enforce_file_format=True)
    image = DicomImage(path)
    frames = every_frame(image)
    assert len(frames) == 4
    assert image.stopped_early is not None
    assert image.stopped_early.startswith("decoding stopped at frame 5 of 6: the frame could not be decoded")
    assert image._fast_ok  # the damaged frame is found by the fast path as by pydicom's
    assert image.stopped_early.endswith("the 4 frames before it were processed")
    assert_clean(image.stopped_early, tmp_path)


def test_missing_decoder_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_dicom(tmp_path / "cine.dcm", [phantom(0, (32, 48))] * 2, FrameTime=40.0)
    image = DicomImage(path)  # the header needs no decoder
    monkeypatch.setattr(pydicom.pixels, "get_decoder", lambda uid: NoPlugins())
    with pytest.raises(CosaEdgeError) as caught:
        next(image.frames())
    message = str(caught.value)
    assert "cine.dcm is compressed as JPEG Baseline (Process 1)" in message
    assert "pip install 'cosa-edge[dicom]'" in message and "pylibjpeg-libjpeg" in message
    assert_clean(message, tmp_path)

    def unsupported(uid: str) -> None:
        raise NotImplementedError(f"no decoder for {uid}")

    monkeypatch.setattr(pydicom.pixels, "get_decoder", unsupported)
    with pytest.raises(CosaEdgeError, match="which pydicom cannot decode"):
        read_dicom_grey(path)


# ----------------------------------------------------------------------------------------------------------
# Privacy


def test_patient_attributes_stay_inside_the_dataset(tmp_path: Path) -> None:
    folder = tmp_path / "Doe^Jane PID-123456 20240102"
    folder.mkdir()
    path = write_dicom(folder / "cine.dcm", [phantom(i) for i in range(4)],
                       regions=[TISSUE, DOPPLER, {"box": (150, 0, 400, 50)}], instance=3, FrameTime=40.0,
                       PixelSpacing=[0.1, 0.1])
    image = DicomImage(path)
    assert str(image.dataset.PatientName) == "Doe^Jane"  # the dataset itself still has them, for whoever needs it
    texts = [repr(image.info), str(dataclasses.asdict(image.info)), repr(image), *image.info.warnings,
             *(repr(region) for region in image.info.regions)]
    assert image.info.warnings  # the clamped third region says so
    data = path.read_bytes()
    (folder / "cut.dcm").write_bytes(data[:int(len(data) * 0.6)])
    truncated = DicomImage(folder / "cut.dcm")
    list(truncated.frames())
    texts.append(truncated.stopped_early or "")
    assert truncated.stopped_early
    (folder / "head.dcm").write_bytes(data[:300])
    (folder / "frame0.dcm").write_bytes(data[:len(data) // 8])
    failures = [lambda: tissue_region(image.info.regions, 5), lambda: DicomImage(write_sr(folder / "sr.dcm")),
                lambda: DicomImage(folder / "nothing.dcm"), lambda: DicomImage(folder / "head.dcm"),
                lambda: list(DicomImage(folder / "frame0.dcm").frames())]
    for failure in failures:
        with pytest.raises(CosaEdgeError) as caught:
            failure()
        texts.append(str(caught.value))
    for text in texts:
        assert_clean(text, tmp_path)
    assert isinstance(image.info, DicomInfo)


# ----------------------------------------------------------------------------------------------------------
# pydicom stays optional


def test_module_imports_without_pydicom_and_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    code = "import sys, cosa_edge.data.dicom; print('pydicom' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"  # imported lazily, only when a file is read
    path = write_dicom(tmp_path / "still", [phantom(0, (32, 48))], syntax=uids.ExplicitVRLittleEndian)
    monkeypatch.setitem(sys.modules, "pydicom", None)  # as if it were not installed
    with pytest.raises(CosaEdgeError, match=r"pip install 'cosa-edge\[dicom\]'"):
        DicomImage(path)


def test_jpeg_frames_decode_through_opencv_only_where_it_agrees_with_pydicom(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The fast path (OpenCV's JPEG decoder on the frames pydicom finds) is used where it decodes the first frame
    as pydicom does; otherwise pydicom decodes every frame, and the frames are pydicom's exactly."""
    import cosa_edge.data.dicom as dicom

    frames = [phantom(seed, (48, 64)) for seed in range(5)]
    path = write_dicom(tmp_path / "cine.dcm", frames, FrameTime=40.0)
    fast = DicomImage(path)
    decoded = every_frame(fast)
    assert fast._fast_ok and len(decoded) == 5
    for (_, _, image), original in zip(decoded, frames):
        assert np.abs(image.astype(int) - original).mean() < 3  # JPEG at quality 95
    monkeypatch.setattr(dicom, "_FAST_JPEG_MAX_TOLERANCE", -1)  # no decoder can agree this well: pydicom decodes
    slow = DicomImage(path)
    for index, _, image in every_frame(slow):
        assert np.array_equal(image, pydicom.pixels.pixel_array(path, index=index))
    assert not slow._fast_ok
    rgb = write_dicom(tmp_path / "rgb.dcm", [np.dstack([frames[0]] * 3)] * 2, photometric="RGB", FrameTime=40.0)
    assert not DicomImage(rgb)._fast_jpeg_eligible()  # an "RGB" JPEG may hold untransformed RGB: pydicom's
