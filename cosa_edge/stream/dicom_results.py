"""Inference results back to the archive: a DICOM Segmentation of the lesion and a measurement report.

Both objects are built with highdicom, which copies the patient and study identity from the source dataset
as the standard requires, so that a PACS files them next to the image they were computed from:

- :func:`write_segmentation`: a still's lesion mask as a BINARY Segmentation (one segment, "Mass").
- :func:`write_measurement_report`: the lesion's long axis, short axis and area on each frame that held one,
  as a Comprehensive SR holding a TID 1500 Measurement Report (works for cines and stills alike).

Privacy: the outputs carry the patient's identity by design, but nothing here may *show* it. highdicom warns
about a caret-less patient name quoting it, logs the UID of the dataset it copies the patient from, and
quotes a non-conformant value in its errors, so all work on the source runs inside ``withholding``
(dicom_source.py, beside the reading of the source and the atomic save), which rewrites any log record,
warning or error message that would show one of the source's identifying values (tests/test_dicom_results.py
fails without it).

Both files are research output: their series descriptions say so, and the SR is left PRELIMINARY and
UNVERIFIED.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .._optional import require
from ..errors import CosaEdgeError
from .dicom_source import (
    build_with_highdicom,
    checked_version,
    number_of_frames,
    read_source,
    save_dataset,
    withholding,
)

if TYPE_CHECKING:  # only for annotations: highdicom and pydicom are imported where they are used
    from pydicom.dataset import Dataset

#: How the outputs name their maker (Manufacturer, Manufacturer's Model Name, algorithm and device names).
MANUFACTURER = "cosa-edge"
MODEL_NAME = "MTL-COSA"
ALGORITHM_NAME = "cosa-edge MTL-COSA"
#: Software has no serial number, but Device Serial Number is Type 1 in the SEG's Enhanced General Equipment.
DEVICE_SERIAL_NUMBER = "cosa-edge-software"
#: Fixed series numbers past any a scanner uses, so viewers list cosa-edge's series after the source's.
SEG_SERIES_NUMBER = 901
SR_SERIES_NUMBER = 902
#: Series Description is LO (at most 64 characters, no backslash) in the default character repertoire: these
#: fit it, so no viewer truncates the caveat and no character set has to change.
SEG_SERIES_DESCRIPTION = "cosa-edge lesion SEG - research use only, not for diagnosis"
SR_SERIES_DESCRIPTION = "cosa-edge lesion sizes - research use only, not for diagnosis"
#: The whole caveat, where a longer text fits (Segment Description is ST, up to 1024 characters).
CAVEAT = "cosa-edge lesion segmentation - research use only, not for clinical diagnosis"


@dataclass(frozen=True)
class FrameMeasurement:
    """The lesion's sizes on one frame of the source, in millimetres."""

    frame_number: int  # 1-based frame number in the source (DICOM's Referenced Frame Number convention)
    long_axis_mm: float  # the lesion's longest diameter
    short_axis_mm: float  # its longest diameter perpendicular to the long axis
    area_mm2: float


# --------------------------------------------------------------------------------------------------------------
# DICOM Segmentation
# --------------------------------------------------------------------------------------------------------------

def write_segmentation(source: Path, mask: np.ndarray, out: Path, *, software_version: str,
                       malignancy_score: float | None = None) -> Path:
    """Write the lesion ``mask`` of a single-frame DICOM ``source`` as a DICOM Segmentation at ``out``.

    A BINARY Segmentation (highdicom.seg.Segmentation) with one segment, "Lesion": segmented property
    category SCT 49755003 "Morphologically Abnormal Structure", type SCT 4147007 "Mass" (the BI-RADS word,
    which says nothing of malignancy, unlike "Neoplasm"), anatomic region SCT 76752008 "Breast", algorithm
    type AUTOMATIC, identified as "cosa-edge MTL-COSA" ``software_version`` of family DCM 123110 "Artificial
    Intelligence". It references the source image, carries the source's patient and study, and gets new
    Series and SOP Instance UIDs. ``malignancy_score`` (the classifier's probability of malignancy, 0 to 1),
    when given, is stated in the Content Description; a SEG has no coded place for it.

    An empty mask (no lesion) is written too, as one all-zero frame: highdicom accepts it (with
    ``omit_empty_frames`` it would fall back to keeping the frame anyway, with a warning, since a SEG needs
    at least one frame; it is turned off here so that every SEG has exactly one frame). The object then
    says that the algorithm looked at this image and segmented nothing, which an archive can file like any
    other result; refusing would leave a gap that reads the same as "never analysed".

    The file is written atomically (a temporary name beside ``out``, then ``os.replace``): on any error
    ``out`` keeps what it held before (nothing, or the previous file), and no temporary file is left.

    Raises :class:`CosaEdgeError` when the source is a cine (more than one frame: highdicom cannot place one
    mask on it without a Frame of Reference; use :func:`write_measurement_report`, ``--dicom-sr``), when the
    mask's shape differs from the source's Rows x Columns, or when the source is not a usable DICOM image.
    """
    hd = require("highdicom")
    from pydicom.sr.codedict import codes
    from pydicom.uid import ExplicitVRLittleEndian

    source, version = Path(source), checked_version(software_version)
    with withholding() as secrets:
        dataset = read_source(source, secrets)
        frames = number_of_frames(dataset)
        if frames > 1:
            raise CosaEdgeError(
                f"{source.name} is a cine of {frames} frames, which a DICOM Segmentation of one mask cannot "
                "reference without a Frame of Reference; write the measurements as a structured report with "
                "write_measurement_report (--dicom-sr) instead")
        pixels = _binary_mask(mask, (int(dataset.Rows), int(dataset.Columns)), source)
        description = _content_description(malignancy_score)
        segment = hd.seg.SegmentDescription(
            segment_number=1,
            segment_label="Lesion",
            segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
            segmented_property_type=codes.SCT.Mass,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=_algorithm_sequence(hd, codes, version),
            anatomic_regions=[codes.SCT.Breast],
        )
        segment.SegmentDescription = CAVEAT  # (0062,0006), Type 3: the caveat in full, beside the short one
        seg = build_with_highdicom(lambda: hd.seg.Segmentation(
            source_images=[dataset],
            pixel_array=pixels,
            segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
            segment_descriptions=[segment],
            series_instance_uid=hd.UID(),
            series_number=SEG_SERIES_NUMBER,
            sop_instance_uid=hd.UID(),
            instance_number=1,
            manufacturer=MANUFACTURER,
            manufacturer_model_name=MODEL_NAME,
            software_versions=version,
            device_serial_number=DEVICE_SERIAL_NUMBER,
            content_description=description,
            content_label="LESION",
            series_description=SEG_SERIES_DESCRIPTION,
            transfer_syntax_uid=ExplicitVRLittleEndian,
            omit_empty_frames=False,
        ), "DICOM Segmentation")
        return save_dataset(seg, out)


def _binary_mask(mask: np.ndarray, shape: tuple[int, int], source: Path) -> np.ndarray:
    """``mask`` as a bool array of the source's ``shape``, or a CosaEdgeError saying what is wrong."""
    array = np.asarray(mask)
    if array.shape != shape:
        raise CosaEdgeError(
            f"the lesion mask is {'x'.join(map(str, array.shape))} but {source.name} is {shape[0]}x{shape[1]} "
            "(Rows x Columns); pass the mask at the source's resolution, not the model's input size")
    if array.dtype != np.bool_:
        # A 0/1 integer mask is the same mask; anything else (a probability map, labels) is not a binary one.
        if not np.issubdtype(array.dtype, np.integer) or not np.isin(array, (0, 1)).all():
            raise CosaEdgeError(f"the lesion mask must be boolean (or 0/1), not {array.dtype} with other values; "
                                "threshold the model's probabilities first")
        array = array.astype(bool)
    return array


def _content_description(malignancy_score: float | None) -> str:
    """Content Description (LO, 64 characters at most) with the score, if there is one."""
    if malignancy_score is None:
        return "Lesion mask by cosa-edge (research use only)"
    score = float(malignancy_score)
    if not math.isfinite(score) or not 0.0 <= score <= 1.0:
        raise CosaEdgeError(f"the malignancy score must be a probability between 0 and 1, not {malignancy_score}; "
                            "pass the classifier's probability of the malignant class")
    return f"Lesion mask; malignancy score {score:.3f} (research use only)"


def _algorithm_sequence(hd: Any, codes: Any, software_version: str) -> Any:
    """The Segmentation Algorithm Identification Sequence naming cosa-edge's model and version."""
    return hd.AlgorithmIdentificationSequence(
        name=ALGORITHM_NAME,
        family=codes.cid7162.ArtificialIntelligence,
        version=software_version,
        source=MANUFACTURER,
    )


# --------------------------------------------------------------------------------------------------------------
# Measurement report (TID 1500)
# --------------------------------------------------------------------------------------------------------------

def write_measurement_report(source: Path, measurements: Sequence[FrameMeasurement], out: Path, *,
                             software_version: str) -> Path:
    """Write the lesion's sizes on each frame of ``source`` as a DICOM structured report at ``out``.

    A Comprehensive SR (the SR class viewers support most widely that holds TID 1500; nothing here needs
    3D coordinates) with a TID 1500 Measurement Report titled DCM 126000 "Imaging Measurement Report":

    - procedure reported SCT 47079000 "Ultrasonography of breast";
    - observer context: a device (DCM 121007 "Device") named "cosa-edge MTL-COSA", manufacturer cosa-edge,
      model MTL-COSA, with a Device Observer UID that is the same for every report cosa-edge writes;
    - one TID 1501 measurement group per measured frame, in frame order, each with a tracking identifier
      "Lesion, frame N" (its own UID: cosa-edge does not claim that the lesions of two frames are one),
      finding category SCT 49755003 "Morphologically Abnormal Structure", finding SCT 4147007 "Mass", finding
      site SCT 76752008 "Breast", the algorithm (TID 4019) and the source image as the source of measurement
      (DCM 121112) with that frame's number as its Referenced Frame Number (only for a multi-frame source;
      a single-frame image has no frame numbers to reference);
    - in each group SCT 103339001 "Long axis" and SCT 103340004 "Short axis" in UCUM "mm", and SCT 42798000
      "Area" in UCUM "mm2".

    The report is marked PRELIMINARY and UNVERIFIED (research output no one has signed) and COMPLETE (every
    frame cosa-edge measured is in it). It is written atomically, like :func:`write_segmentation`.

    Raises :class:`CosaEdgeError` when there are no measurements ("no frame held a lesion; nothing to report"),
    when a frame number lies outside 1..NumberOfFrames, when a size is not a finite positive number (an
    uncalibrated source has no millimetres), or when the source is not a usable DICOM image, and ValueError
    when two measurements name the same frame (the caller's bug: cosa-edge measures one lesion per frame).
    """
    if not measurements:
        raise CosaEdgeError("no frame held a lesion; nothing to report")
    hd = require("highdicom")
    from pydicom.sr.codedict import codes

    source, version = Path(source), checked_version(software_version)
    with withholding() as secrets:
        dataset = read_source(source, secrets)
        ordered = _checked_measurements(measurements, number_of_frames(dataset), source)
        algorithm = hd.sr.AlgorithmIdentification(name=ALGORITHM_NAME, version=version,
                                                  manufacturer=MANUFACTURER)
        groups = [_measurement_group(hd, codes, dataset, item, algorithm) for item in ordered]
        report = build_with_highdicom(lambda: hd.sr.MeasurementReport(
            observation_context=_observation_context(hd, codes),
            procedure_reported=codes.SCT.UltrasonographyOfBreast,
            imaging_measurements=groups,
            title=codes.DCM.ImagingMeasurementReport,
        ), "measurement report")
        sr = build_with_highdicom(lambda: hd.sr.ComprehensiveSR(
            evidence=[dataset],
            content=report[0],
            series_instance_uid=hd.UID(),
            series_number=SR_SERIES_NUMBER,
            sop_instance_uid=hd.UID(),
            instance_number=1,
            manufacturer=MANUFACTURER,
            is_complete=True,
            is_final=False,
            is_verified=False,
            series_description=SR_SERIES_DESCRIPTION,
        ), "DICOM structured report")
        return save_dataset(sr, out)


def _checked_measurements(measurements: Sequence[FrameMeasurement], frames: int,
                          source: Path) -> list[FrameMeasurement]:
    """``measurements`` in frame order, each with a frame of the source and finite positive sizes."""
    seen: set[int] = set()
    for item in measurements:
        number = item.frame_number
        if isinstance(number, bool) or not isinstance(number, (int, np.integer)) or not 1 <= number <= frames:
            raise CosaEdgeError(f"frame number {number} is outside {source.name}'s frames 1..{frames}; frame "
                                "numbers are 1-based, as DICOM counts them")
        if number in seen:
            raise ValueError(f"two measurements name frame {number}; give one measurement per frame")
        seen.add(int(number))
        sizes = (item.long_axis_mm, item.short_axis_mm, item.area_mm2)
        if not all(isinstance(v, (int, float, np.number)) and math.isfinite(v) and v > 0 for v in sizes):
            raise CosaEdgeError(f"frame {number}'s lesion sizes {sizes} are not finite positive millimetres; an "
                                "uncalibrated source has none: give its pixel spacing (--pixel-spacing)")
    return sorted(measurements, key=lambda item: item.frame_number)


def _measurement_group(hd: Any, codes: Any, dataset: Dataset, item: FrameMeasurement, algorithm: Any) -> Any:
    """One TID 1501 group: the lesion's three sizes on one frame, referencing that frame of the source."""
    # Referenced Frame Number belongs to multi-frame images only (highdicom refuses it for a single-frame IOD).
    frame_numbers = [int(item.frame_number)] if "NumberOfFrames" in dataset else None
    image = hd.sr.SourceImageForMeasurementGroup.from_source_image(dataset, referenced_frame_numbers=frame_numbers)
    sizes = ((codes.SCT.LongAxis, item.long_axis_mm, codes.UCUM.Millimeter),
             (codes.SCT.ShortAxis, item.short_axis_mm, codes.UCUM.Millimeter),
             (codes.SCT.Area, item.area_mm2, codes.UCUM.SquareMillimeter))
    return hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=hd.UID(), identifier=f"Lesion, frame {item.frame_number}"),
        finding_category=codes.SCT.MorphologicallyAbnormalStructure,
        finding_type=codes.SCT.Mass,
        finding_sites=[hd.sr.FindingSite(anatomic_location=codes.SCT.Breast)],
        algorithm_id=algorithm,
        measurements=[hd.sr.Measurement(name=name, value=float(value), unit=unit) for name, value, unit in sizes],
        source_images=[image],
    )


def _observation_context(hd: Any, codes: Any) -> Any:
    """TID 1001 naming cosa-edge as the observing device (there is no person observer: nobody read it)."""
    from pydicom.uid import generate_uid

    device = hd.sr.DeviceObserverIdentifyingAttributes(
        # The same UID for every report, derived from the name: the observer is the one piece of software.
        uid=generate_uid(entropy_srcs=[ALGORITHM_NAME]),
        name=ALGORITHM_NAME,
        manufacturer_name=MANUFACTURER,
        model_name=MODEL_NAME,
    )
    return hd.sr.ObservationContext(observer_device_context=hd.sr.ObserverContext(
        observer_type=codes.DCM.Device, observer_identifying_attributes=device))
