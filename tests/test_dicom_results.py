"""DICOM results (cosa_edge/stream/dicom_results.py): a Segmentation of a still's lesion, a TID 1500 report of a cine.

Real: highdicom builds the objects, pydicom writes the sources (tests/dicom_files.py) and reads everything back as
an archive would. Made up: the patient attributes, the phantom frames, the masks and the sizes.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

highdicom = pytest.importorskip("highdicom")
pydicom = pytest.importorskip("pydicom")

from pydicom import uid as uids  # noqa: E402
from pydicom.dataset import Dataset  # noqa: E402

from cosa_edge.errors import CosaEdgeError  # noqa: E402
from cosa_edge.stream.dicom_results import (  # noqa: E402
    FrameMeasurement,
    write_measurement_report,
    write_segmentation,
)
from tests.dicom_files import PATIENT, SECRETS, phantom, write_dicom  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
VERSION = "0.1.0-test"
SIZE = (120, 160)


def still(tmp_path: Path, name: str = "still.dcm", **attributes: Any) -> Path:
    """A single-frame uncompressed ultrasound image (Ultrasound Image Storage) with the planted patient."""
    return write_dicom(tmp_path / name, [phantom(1, SIZE)], syntax=uids.ExplicitVRLittleEndian, **attributes)


def cine(tmp_path: Path, frames: int = 5, name: str = "cine.dcm") -> Path:
    """An uncompressed Ultrasound Multi-frame Image of ``frames`` frames."""
    return write_dicom(tmp_path / name, [phantom(i, SIZE) for i in range(frames)], syntax=uids.ExplicitVRLittleEndian)


def lesion_mask() -> np.ndarray:
    """An ellipse, with a hole and a stray pixel on the edge, so that a wrong bit order or offset shows."""
    rows, cols = np.ogrid[: SIZE[0], : SIZE[1]]
    mask = ((rows - 60) / 25.0) ** 2 + ((cols - 75) / 40.0) ** 2 <= 1.0
    mask[58:61, 70:73] = False
    mask[0, SIZE[1] - 1] = True
    return mask


def code(item: Dataset, keyword: str = "ConceptNameCodeSequence") -> tuple[str, str]:
    """(Coding Scheme Designator, Code Value) of the first item of a code sequence."""
    coded = getattr(item, keyword)[0]
    return coded.CodingSchemeDesignator, coded.CodeValue


def walk(items: Any) -> list[Dataset]:
    """Every content item of an SR content tree, depth first."""
    found = []
    for item in items:
        found.append(item)
        found += walk(item.get("ContentSequence", []))
    return found


def measurement_groups(sr: Dataset) -> list[Dataset]:
    """The TID 1501 Measurement Group containers (DCM 125007) of a report, in document order."""
    return [item for item in walk(sr.ContentSequence)
            if item.ValueType == "CONTAINER" and code(item) == ("DCM", "125007")]


def group_values(group: Dataset) -> dict[tuple[str, str], tuple[float, float, str]]:
    """Concept code -> (Numeric Value, Floating Point Value, UCUM unit) of the group's NUM items."""
    values = {}
    for item in group.ContentSequence:
        if item.ValueType == "NUM":
            measured = item.MeasuredValueSequence[0]
            unit = code(measured, "MeasurementUnitsCodeSequence")
            assert unit[0] == "UCUM"
            values[code(item)] = (float(measured.NumericValue), float(measured.FloatingPointValue), unit[1])
    return values


def group_image(group: Dataset) -> Dataset:
    """The group's one source image reference (IMAGE item, DCM 121112 "Source of Measurement")."""
    images = [item for item in group.ContentSequence if item.ValueType == "IMAGE"]
    assert len(images) == 1 and code(images[0]) == ("DCM", "121112")
    return images[0].ReferencedSOPSequence[0]


def only_left(folder: Path, *files: Path) -> None:
    """Nothing but ``files`` in ``folder``: no other output, no temporary file."""
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in files)


# ---------------------------------------------------------------------------------------------------------------
# Segmentation
# ---------------------------------------------------------------------------------------------------------------

def test_segmentation_round_trip_mask_references_and_identity(tmp_path: Path) -> None:
    """The SEG gives back the exact mask, references the source, carries its patient and study, new UIDs."""
    source = still(tmp_path, PatientSex="F", StudyID="S-1", SeriesNumber=3)
    mask = lesion_mask()
    out = write_segmentation(source, mask, tmp_path / "out" / "lesion.seg.dcm", software_version=VERSION,
                             malignancy_score=0.8125)
    assert out == tmp_path / "out" / "lesion.seg.dcm"
    src = pydicom.dcmread(source)
    seg = pydicom.dcmread(out)

    assert seg.Modality == "SEG" and seg.SOPClassUID == uids.SegmentationStorage
    assert seg.SegmentationType == "BINARY" and seg.NumberOfFrames == 1
    assert (seg.Rows, seg.Columns) == SIZE
    assert np.array_equal(seg.pixel_array.astype(bool), mask)  # exact, bit for bit

    # Identity copied as the standard requires, so that the archive files it with its source.
    assert seg.PatientID == PATIENT["PatientID"] and str(seg.PatientName) == PATIENT["PatientName"]
    assert seg.StudyInstanceUID == src.StudyInstanceUID and seg.PatientSex == "F" and seg.StudyID == "S-1"
    assert seg.SeriesInstanceUID != src.SeriesInstanceUID and seg.SOPInstanceUID != src.SOPInstanceUID
    assert seg.file_meta.MediaStorageSOPInstanceUID == seg.SOPInstanceUID
    assert seg.SeriesDescription.startswith("cosa-edge lesion") and "research use only" in seg.SeriesDescription
    assert len(seg.SeriesDescription) <= 64  # LO
    assert "0.812" in seg.ContentDescription

    # References: the series-level list and the frame's derivation both name the source instance.
    referenced = seg.ReferencedSeriesSequence[0]
    assert referenced.SeriesInstanceUID == src.SeriesInstanceUID
    assert referenced.ReferencedInstanceSequence[0].ReferencedSOPInstanceUID == src.SOPInstanceUID
    derivation = seg.PerFrameFunctionalGroupsSequence[0].DerivationImageSequence[0]
    assert derivation.SourceImageSequence[0].ReferencedSOPInstanceUID == src.SOPInstanceUID

    segment = seg.SegmentSequence[0]
    assert segment.SegmentNumber == 1 and segment.SegmentLabel == "Lesion"
    assert code(segment, "SegmentedPropertyCategoryCodeSequence") == ("SCT", "49755003")
    assert code(segment, "SegmentedPropertyTypeCodeSequence") == ("SCT", "4147007")
    assert code(segment, "AnatomicRegionSequence") == ("SCT", "76752008")
    assert segment.SegmentAlgorithmType == "AUTOMATIC"
    algorithm = segment.SegmentationAlgorithmIdentificationSequence[0]
    assert algorithm.AlgorithmName == "cosa-edge MTL-COSA" and algorithm.AlgorithmVersion == VERSION
    assert code(algorithm, "AlgorithmFamilyCodeSequence") == ("DCM", "123110")
    assert seg.SoftwareVersions == VERSION and seg.Manufacturer == "cosa-edge"

    # highdicom reads it back too, and places the mask on the source instance.
    read = highdicom.seg.segread(out)
    pixels = read.get_pixels_by_source_instance([src.SOPInstanceUID], segment_numbers=[1])
    assert np.array_equal(pixels[0, :, :, 0].astype(bool), mask)
    only_left(tmp_path / "out", out)


def test_segmentation_of_source_without_type2_attributes(tmp_path: Path) -> None:
    """A source without Patient Sex, Study ID and with a scanner's "U" works: absent Type 2 become empty."""
    seg = pydicom.dcmread(write_segmentation(still(tmp_path, PatientSex="U"), lesion_mask(), tmp_path / "a.dcm",
                                             software_version=VERSION))
    assert seg.PatientSex in ("", None) and seg.StudyID in ("", None)
    assert seg.PatientID == PATIENT["PatientID"]


def test_empty_mask_is_one_all_zero_frame(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """No lesion: still a valid SEG, with one frame of zeros (no fallback warning from highdicom)."""
    source = still(tmp_path)
    caplog.set_level(logging.WARNING)
    out = write_segmentation(source, np.zeros(SIZE, bool), tmp_path / "empty.dcm", software_version=VERSION)
    seg = pydicom.dcmread(out)
    assert seg.NumberOfFrames == 1 and seg.pixel_array.shape == SIZE and not seg.pixel_array.any()
    assert "Encoding an empty image" not in caplog.text
    read = highdicom.seg.segread(out)
    assert read.number_of_segments == 1


def test_segmentation_accepts_a_0_1_integer_mask(tmp_path: Path) -> None:
    mask = lesion_mask()
    seg = pydicom.dcmread(write_segmentation(still(tmp_path), mask.astype(np.uint8), tmp_path / "u8.dcm",
                                             software_version=VERSION))
    assert np.array_equal(seg.pixel_array.astype(bool), mask)


def test_multi_frame_source_is_refused_naming_dicom_sr(tmp_path: Path) -> None:
    source = cine(tmp_path)
    with pytest.raises(CosaEdgeError, match="--dicom-sr") as caught:
        write_segmentation(source, lesion_mask(), tmp_path / "x.dcm", software_version=VERSION)
    assert "write_measurement_report" in str(caught.value) and "5 frames" in str(caught.value)
    only_left(tmp_path, source)


@pytest.mark.parametrize("shape", [(SIZE[1], SIZE[0]), (256, 256), (SIZE[0],)])
def test_mask_shape_mismatch_is_refused(tmp_path: Path, shape: tuple[int, ...]) -> None:
    source = still(tmp_path)
    with pytest.raises(CosaEdgeError, match="Rows x Columns"):
        write_segmentation(source, np.ones(shape, bool), tmp_path / "x.dcm", software_version=VERSION)
    only_left(tmp_path, source)


@pytest.mark.parametrize("bad", [
    {"mask": np.full(SIZE, 0.5)},                 # a probability map, not a mask
    {"malignancy_score": 1.5},
    {"malignancy_score": float("nan")},
    {"software_version": ""},
])
def test_segmentation_refuses_bad_arguments(tmp_path: Path, bad: dict[str, Any]) -> None:
    source = still(tmp_path)
    arguments: dict[str, Any] = {"mask": lesion_mask(), "software_version": VERSION, "malignancy_score": None} | bad
    mask = arguments.pop("mask")
    with pytest.raises(CosaEdgeError):
        write_segmentation(source, mask, tmp_path / "x.dcm", **arguments)
    only_left(tmp_path, source)


def test_not_dicom_and_missing_source_are_refused(tmp_path: Path) -> None:
    text = tmp_path / "notes.dcm"
    text.write_text("not a DICOM file")
    with pytest.raises(CosaEdgeError, match="not a DICOM file"):
        write_segmentation(text, lesion_mask(), tmp_path / "x.dcm", software_version=VERSION)
    with pytest.raises(CosaEdgeError, match="gone.dcm does not exist") as caught:
        write_measurement_report(tmp_path / "gone.dcm", [FrameMeasurement(1, 2.0, 1.0, 1.5)], tmp_path / "x.dcm",
                                 software_version=VERSION)
    assert str(tmp_path) not in str(caught.value)  # folders are never named: exports name them after the patient
    only_left(tmp_path, text)


def test_failed_write_leaves_no_partial_file_and_keeps_the_old_one(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A write that dies half-way leaves the previous file whole and no temporary file beside it."""
    source = still(tmp_path)
    out = tmp_path / "lesion.dcm"
    write_segmentation(source, lesion_mask(), out, software_version=VERSION)
    before = out.read_bytes()

    def half_then_fail(self: Dataset, handle: Any, **_: Any) -> None:
        handle.write(b"\0" * 128 + b"DICM" + b"\x02\x00" * 50)
        raise OSError("disk full")

    monkeypatch.setattr(highdicom.seg.Segmentation, "save_as", half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        write_segmentation(source, np.zeros(SIZE, bool), out, software_version=VERSION)
    assert out.read_bytes() == before
    only_left(tmp_path, source, out)

    monkeypatch.setattr(highdicom.sr.ComprehensiveSR, "save_as", half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        write_measurement_report(source, [FrameMeasurement(1, 9.0, 4.0, 30.0)], tmp_path / "report.dcm",
                                 software_version=VERSION)
    only_left(tmp_path, source, out)


def test_no_patient_attribute_in_logs_warnings_or_errors(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                         recwarn: pytest.WarningsRecorder,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """highdicom flags a caret-less name with the name in the message, and quotes bad values in its errors:
    the module rewrites both. (Sources are written before capturing: pydicom's own writer warns too.)"""
    caret_less = still(tmp_path, "a.dcm", PatientName="DOE JANE")
    bad_time = still(tmp_path, "b.dcm", StudyTime="7777777")
    recwarn.clear()
    caplog.clear()
    caplog.set_level(logging.DEBUG)  # highdicom logs at DEBUG/INFO which dataset it copies from

    write_segmentation(caret_less, lesion_mask(), tmp_path / "a.seg.dcm", software_version=VERSION)
    write_measurement_report(caret_less, [FrameMeasurement(1, 9.0, 4.0, 30.0)], tmp_path / "a.sr.dcm",
                             software_version=VERSION)
    with pytest.raises(CosaEdgeError) as caught:
        write_segmentation(bad_time, lesion_mask(), tmp_path / "b.seg.dcm", software_version=VERSION)
    assert not (tmp_path / "b.seg.dcm").exists()
    assert caught.value.__cause__ is None and caught.value.__suppress_context__

    said = "\n".join([caplog.text, *(str(w.message) for w in recwarn), str(caught.value), *capsys.readouterr()])
    assert caplog.records, "highdicom logged nothing: the check would prove nothing"
    for secret in [*SECRETS, "DOE", "JANE", "7777777"]:
        assert secret.lower() not in said.lower(), secret
    # The outputs themselves do carry the identity, as they must.
    assert str(pydicom.dcmread(tmp_path / "a.seg.dcm").PatientName) == "DOE JANE"


# ---------------------------------------------------------------------------------------------------------------
# Measurement report
# ---------------------------------------------------------------------------------------------------------------

def test_report_of_a_cine_round_trip(tmp_path: Path) -> None:
    """One group per measured frame, in frame order, sizes and units as written, frame numbers referenced."""
    source = cine(tmp_path, frames=6)
    measurements = [FrameMeasurement(5, 14.123456789, 8.5, 91.25),
                    FrameMeasurement(2, 12.0, 7.0, 66.0),
                    FrameMeasurement(6, 0.3, 0.1, 0.021)]
    out = write_measurement_report(source, measurements, tmp_path / "sizes.sr.dcm", software_version=VERSION)
    src = pydicom.dcmread(source, stop_before_pixels=True)
    sr = pydicom.dcmread(out)

    assert sr.Modality == "SR" and sr.SOPClassUID == uids.ComprehensiveSRStorage
    assert sr.PatientID == PATIENT["PatientID"] and sr.StudyInstanceUID == src.StudyInstanceUID
    assert sr.SeriesInstanceUID != src.SeriesInstanceUID and sr.SOPInstanceUID != src.SOPInstanceUID
    assert (sr.VerificationFlag, sr.PreliminaryFlag, sr.CompletionFlag) == ("UNVERIFIED", "PRELIMINARY", "COMPLETE")
    assert "research use only" in sr.SeriesDescription and len(sr.SeriesDescription) <= 64
    assert code(sr) == ("DCM", "126000")  # Imaging Measurement Report
    assert sr.ContentTemplateSequence[0].TemplateIdentifier == "1500"

    # The source is listed as evidence in the same study.
    evidence = sr.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence[0]
    assert evidence.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == src.SOPInstanceUID

    groups = measurement_groups(sr)
    assert len(groups) == 3
    for group, expected in zip(groups, sorted(measurements, key=lambda m: m.frame_number)):
        values = group_values(group)
        assert set(values) == {("SCT", "103339001"), ("SCT", "103340004"), ("SCT", "42798000")}
        for key, value, unit in ((("SCT", "103339001"), expected.long_axis_mm, "mm"),
                                 (("SCT", "103340004"), expected.short_axis_mm, "mm"),
                                 (("SCT", "42798000"), expected.area_mm2, "mm2")):
            numeric, floating, got_unit = values[key]
            assert floating == value and numeric == pytest.approx(value, rel=1e-9) and got_unit == unit
        image = group_image(group)
        assert image.ReferencedSOPInstanceUID == src.SOPInstanceUID
        assert image.ReferencedSOPClassUID == src.SOPClassUID
        assert [int(n) for n in np.atleast_1d(image.ReferencedFrameNumber)] == [expected.frame_number]
        items = {code(item): item for item in group.ContentSequence if item.ValueType == "CODE"}
        assert code(items[("SCT", "276214006")], "ConceptCodeSequence") == ("SCT", "49755003")  # category
        assert code(items[("DCM", "121071")], "ConceptCodeSequence") == ("SCT", "4147007")  # finding: Mass
        assert code(items[("SCT", "363698007")], "ConceptCodeSequence") == ("SCT", "76752008")  # site: breast
        texts = {code(item): item.TextValue for item in group.ContentSequence if item.ValueType == "TEXT"}
        assert texts[("DCM", "112039")] == f"Lesion, frame {expected.frame_number}"
        assert texts[("DCM", "111001")] == "cosa-edge MTL-COSA" and texts[("DCM", "111003")] == VERSION

    # Observer context: the device cosa-edge; procedure reported: ultrasonography of breast.
    root = {code(item): item for item in sr.ContentSequence}
    assert code(root[("DCM", "121005")], "ConceptCodeSequence") == ("DCM", "121007")  # observer type: device
    assert root[("DCM", "121013")].TextValue == "cosa-edge MTL-COSA"
    assert code(root[("DCM", "121058")], "ConceptCodeSequence") == ("SCT", "47079000")

    # highdicom parses its own report back, with the three groups.
    report = highdicom.sr.srread(out)
    assert len(report.content.get_observer_contexts()) == 1
    only_left(tmp_path, source, out)


def test_report_of_a_still_has_no_frame_numbers(tmp_path: Path) -> None:
    """A single-frame image has no frames to number: frame 1 is the image, referenced without a frame list."""
    source = still(tmp_path)
    sr = pydicom.dcmread(write_measurement_report(source, [FrameMeasurement(1, 10.5, 6.25, 51.5)],
                                                  tmp_path / "still.sr.dcm", software_version=VERSION))
    (group,) = measurement_groups(sr)
    image = group_image(group)
    assert image.ReferencedSOPInstanceUID == pydicom.dcmread(source).SOPInstanceUID
    assert "ReferencedFrameNumber" not in image
    assert group_values(group)[("SCT", "42798000")][1:] == (51.5, "mm2")


def test_report_refuses_no_measurements(tmp_path: Path) -> None:
    source = cine(tmp_path, frames=3)
    with pytest.raises(CosaEdgeError, match="no frame held a lesion; nothing to report"):
        write_measurement_report(source, [], tmp_path / "x.dcm", software_version=VERSION)
    only_left(tmp_path, source)


@pytest.mark.parametrize("frame", [0, 4, -1])
def test_report_refuses_a_frame_outside_the_source(tmp_path: Path, frame: int) -> None:
    source = cine(tmp_path, frames=3)
    with pytest.raises(CosaEdgeError, match=r"outside cine\.dcm's frames 1\.\.3"):
        write_measurement_report(source, [FrameMeasurement(2, 5.0, 3.0, 11.0), FrameMeasurement(frame, 5.0, 3.0, 11.0)],
                                 tmp_path / "x.dcm", software_version=VERSION)
    with pytest.raises(CosaEdgeError, match=r"frames 1\.\.1"):
        write_measurement_report(still(tmp_path), [FrameMeasurement(2, 5.0, 3.0, 11.0)], tmp_path / "x.dcm",
                                 software_version=VERSION)
    assert not (tmp_path / "x.dcm").exists()


def test_report_refuses_sizes_that_are_not_millimetres(tmp_path: Path) -> None:
    source = cine(tmp_path, frames=2)
    for sizes in [(float("nan"), 1.0, 1.0), (5.0, -1.0, 3.0), (5.0, 2.0, float("inf"))]:
        with pytest.raises(CosaEdgeError, match="--pixel-spacing"):
            write_measurement_report(source, [FrameMeasurement(1, *sizes)], tmp_path / "x.dcm",
                                     software_version=VERSION)
    with pytest.raises(ValueError, match="frame 2"):
        write_measurement_report(source, [FrameMeasurement(2, 5.0, 3.0, 11.0)] * 2, tmp_path / "x.dcm",
                                 software_version=VERSION)
    only_left(tmp_path, source)


# ---------------------------------------------------------------------------------------------------------------
# Lazy import
# ---------------------------------------------------------------------------------------------------------------

def test_import_does_not_import_highdicom_or_pydicom() -> None:
    code_ = ("import sys, cosa_edge.stream.dicom_results as m; "
             "print(sorted(n for n in ('highdicom', 'pydicom') if n in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code_], cwd=REPO, capture_output=True, text=True, timeout=60,
                            check=True)
    assert result.stdout.strip() == "[]", result.stdout + result.stderr


# ---------------------------------------------------------------------------------------------------------------
# Sources as scanners and cosa-edge's own phantom write them
# ---------------------------------------------------------------------------------------------------------------

def test_jpeg_still_and_the_phantom_cine(tmp_path: Path) -> None:
    """Compressed sources need no decoder (only their attributes are read); the phantom cine (no patient sex,
    birth date, accession number or study ID) gets a report."""
    from cosa_edge.data.dicom_phantom import write_sweep_dicom

    jpeg_still = write_dicom(tmp_path / "jpeg.dcm", [phantom(2, SIZE)])  # JPEG baseline, the helper's default
    seg = pydicom.dcmread(write_segmentation(jpeg_still, lesion_mask(), tmp_path / "jpeg.seg.dcm",
                                             software_version=VERSION))
    assert np.array_equal(seg.pixel_array.astype(bool), lesion_mask())

    sweep = write_sweep_dicom(tmp_path / "sweep.dcm", frames=4, size=(64, 80))
    sr = pydicom.dcmread(write_measurement_report(sweep, [FrameMeasurement(4, 3.5, 2.0, 5.5)],
                                                  tmp_path / "sweep.sr.dcm", software_version=VERSION))
    (group,) = measurement_groups(sr)
    assert int(group_image(group).ReferencedFrameNumber) == 4
    assert sr.PatientID == "PHANTOM"
