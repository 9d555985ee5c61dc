"""DICOM files for the tests, written with pydicom: ultrasound stills and cines with planted patient attributes.

Real: pydicom writes genuine DICOM Part 10 files (JPEG baseline frames encapsulated, RLE, uncompressed), which
cosa-edge then reads as it would a scanner's export. Made up: the patient attributes and the pixel content
(phantoms).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
from pydicom import uid as uids
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.sequence import Sequence

from cosa_edge.data.phantom import make_phantom

# Patient attributes planted in every file written here; none may come out of the module.
STUDY_UID, SERIES_UID = "1.2.826.0.1.3680043.8.498.424242.1", "1.2.826.0.1.3680043.8.498.424242.2"
PATIENT: dict[str, str] = {
    "PatientName": "Doe^Jane", "PatientID": "PID-123456", "PatientBirthDate": "19700101",
    "AccessionNumber": "ACC-987654", "InstitutionName": "Saint Example Hospital", "StudyDate": "20240102",
    "SeriesDate": "20240103", "ContentDate": "20240104", "StudyTime": "101112",
    "StudyInstanceUID": STUDY_UID, "SeriesInstanceUID": SERIES_UID,
}
SECRETS = ["Doe", "Jane", "PID-123456", "19700101", "ACC-987654", "Saint Example", "20240102", "20240103",
           "20240104", "101112", "424242"]

TISSUE = {"box": (10, 6, 149, 79), "delta_cm": (0.0125, 0.015)}  # inclusive corners; (dx, dy) in cm
DOPPLER = {"box": (0, 84, 159, 119), "spatial": 3, "data_type": 3, "units": (4, 7), "delta_cm": (0.01, 2.0)}


def phantom(seed: int, size: tuple[int, int] = (120, 160)) -> np.ndarray:
    return make_phantom(seed, size=size).image


def region_item(box: tuple[int, int, int, int], spatial: int = 1, data_type: int = 1,
                units: tuple[int, int] = (3, 3), delta_cm: tuple[float, float] = (0.01, 0.01)) -> Dataset:
    """One Sequence of Ultrasound Regions item; units (x, y) 3 = cm, 4 = s, 7 = cm/s; delta (dx, dy)."""
    item = Dataset()
    item.RegionSpatialFormat, item.RegionDataType, item.RegionFlags = spatial, data_type, 0
    (item.RegionLocationMinX0, item.RegionLocationMinY0,
     item.RegionLocationMaxX1, item.RegionLocationMaxY1) = box
    item.PhysicalUnitsXDirection, item.PhysicalUnitsYDirection = units
    item.PhysicalDeltaX, item.PhysicalDeltaY = delta_cm
    return item


def write_dicom(path: Path, frames: list[np.ndarray], *, syntax: str = uids.JPEGBaseline8Bit,
                photometric: str | None = None, bits: int = 8, regions: list[dict[str, Any]] | None = None,
                instance: int | None = None, multi_frame: bool | None = None, pixels: bool = True,
                **attributes: Any) -> Path:
    """A DICOM Part 10 ultrasound file with the planted patient attributes; ``attributes`` go in as they are."""
    multi_frame = len(frames) > 1 if multi_frame is None else multi_frame
    sop = uids.UltrasoundMultiFrameImageStorage if multi_frame else uids.UltrasoundImageStorage
    first = frames[0]
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = sop, uids.generate_uid()
    meta.TransferSyntaxUID = uids.ExplicitVRLittleEndian if syntax == uids.RLELossless else syntax
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = sop, meta.MediaStorageSOPInstanceUID, "US"
    for keyword, value in PATIENT.items():
        setattr(ds, keyword, value)
    ds.Rows, ds.Columns = first.shape[:2]
    ds.SamplesPerPixel = 1 if first.ndim == 2 else 3
    ds.PhotometricInterpretation = photometric or ("MONOCHROME2" if first.ndim == 2 else "RGB")
    if first.ndim == 3:
        ds.PlanarConfiguration = 0
    ds.BitsAllocated = 8 if bits <= 8 else 16
    ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits, bits - 1, 0
    if multi_frame:
        ds.NumberOfFrames = len(frames)
    if instance is not None:
        ds.InstanceNumber = instance
    if regions:
        ds.SequenceOfUltrasoundRegions = Sequence([region_item(**region) for region in regions])
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    if pixels and syntax == uids.JPEGBaseline8Bit:
        ds.PixelData = encapsulate([jpeg(frame) for frame in frames])
        ds["PixelData"].VR = "OB"
    elif pixels:
        ds.PixelData = np.stack(frames).astype(np.uint8 if bits <= 8 else np.uint16).tobytes()
        ds["PixelData"].VR = "OB" if bits <= 8 else "OW"
    if pixels and syntax == uids.RLELossless:
        ds.compress(uids.RLELossless, encoding_plugin="pydicom", generate_instance_uid=False)
    ds.save_as(path, enforce_file_format=True)
    return path


def jpeg(frame: np.ndarray) -> bytes:
    ok, encoded = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    return encoded.tobytes()


def write_sr(path: Path) -> Path:
    """A structured report: DICOM, with the patient's attributes, but no image."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = uids.BasicTextSRStorage, uids.generate_uid()
    meta.TransferSyntaxUID = uids.ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID, "SR"
    for keyword, value in PATIENT.items():
        setattr(ds, keyword, value)
    ds.save_as(path, enforce_file_format=True)
    return path


class NoPlugins:
    """A decoder whose plugins are all missing, as pydicom reports it."""

    is_available = False
    missing_dependencies = ["pylibjpeg - requires pylibjpeg>=2.0 and pylibjpeg-libjpeg>=2.1",
                            "pillow - requires pillow>=10.0"]
