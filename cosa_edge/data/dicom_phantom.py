"""The phantom probe sweep as a DICOM ultrasound cine loop, to try and measure the DICOM path without patient data.

A real Ultrasound Multi-frame Image Storage file as scanners write them: JPEG baseline frames encapsulated, a
Frame Time, and a Sequence of Ultrasound Regions whose one 2D tissue region covers the image and carries its
physical spacing in cm, so that sizes come out in millimetres. Its patient is a named phantom; it holds no date.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2

from .._optional import require
from ..errors import CosaEdgeError
from .phantom import phantom_sweep

#: JPEG quality of the frames: a scanner's export is lossy too, and 95 keeps the speckle.
JPEG_QUALITY = 95


def write_sweep_dicom(path: Path, seed: int = 0, frames: int = 120, size: tuple[int, int] = (256, 320),
                      fps: float = 20.0, spacing_mm: float = 0.1) -> Path:
    """Render :func:`cosa_edge.data.phantom.phantom_sweep` to a multi-frame DICOM file, written atomically.

    ``spacing_mm``: the size of one pixel (square) that the region's Physical Delta X/Y states.
    """
    pydicom = require("pydicom")
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.encaps import encapsulate
    from pydicom.sequence import Sequence
    from pydicom.uid import JPEGBaseline8Bit, UltrasoundMultiFrameImageStorage, generate_uid

    if fps <= 0 or spacing_mm <= 0:
        raise CosaEdgeError(f"a phantom cine needs a positive frame rate and pixel spacing, not {fps} and {spacing_mm}")
    height, width = size
    encoded = []
    for frame in phantom_sweep(seed, frames, size):
        ok, data = cv2.imencode(".jpg", frame.image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if not ok:
            raise CosaEdgeError("OpenCV could not JPEG-encode a phantom frame")
        encoded.append(data.tobytes())

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UltrasoundMultiFrameImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = UltrasoundMultiFrameImageStorage, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Modality, ds.PatientName, ds.PatientID = "US", "Phantom^cosa-edge", "PHANTOM"
    ds.SeriesNumber, ds.InstanceNumber = 1, 1
    ds.Rows, ds.Columns = height, width
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.NumberOfFrames = len(encoded)
    ds.FrameTime = round(1000.0 / fps, 4)
    ds.FrameIncrementPointer = pydicom.tag.Tag("FrameTime")
    ds.CineRate = int(round(fps))
    region = Dataset()
    region.RegionSpatialFormat, region.RegionDataType, region.RegionFlags = 1, 1, 0  # 2D, tissue
    region.RegionLocationMinX0, region.RegionLocationMinY0 = 0, 0
    region.RegionLocationMaxX1, region.RegionLocationMaxY1 = width - 1, height - 1
    region.PhysicalUnitsXDirection = region.PhysicalUnitsYDirection = 3  # cm
    region.PhysicalDeltaX = region.PhysicalDeltaY = spacing_mm / 10.0
    ds.SequenceOfUltrasoundRegions = Sequence([region])
    ds.PixelData = encapsulate(encoded)
    ds["PixelData"].VR = "OB"

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    try:
        ds.save_as(partial, enforce_file_format=True)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return path
