"""The sound DICOM files that fuzz cases start from: small, scanner-like, written with pydicom, made-up content.

Six bases (48 x 64 pixels, no patient attributes): a JPEG baseline YBR cine of 8 and of 40 frames (as many
fragments as the issue's cine), an uncompressed grey cine, an RLE colour cine, an RGB still and a 16-bit grey
still with a window. :mod:`.dicom_cases` changes them.
"""

from __future__ import annotations

import io
from typing import Any

import cv2
import numpy as np

from .._optional import require
from ..data.phantom import make_phantom

#: Rows and Columns of every base file, and its number of frames.
BASE_SHAPE = (48, 64)
BASE_FRAMES = 8
#: The cine with as many fragments as the issue's (Number of Frames 0 on a 40-fragment cine read one frame).
LONG_FRAMES = 40

BASES = ("jpeg_cine", "jpeg_cine_long", "raw_grey_cine", "raw_rgb_still", "raw_grey16_still", "rle_cine")


def _frames(count: int, colour: bool) -> list[np.ndarray]:
    frames = []
    for seed in range(count):
        grey = make_phantom(seed, size=BASE_SHAPE).image
        frames.append(cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR) if colour else grey)
    return frames


def _jpeg(frame: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 90])
    if not ok:
        raise RuntimeError("OpenCV could not encode a base frame")
    return data.tobytes()


def _base(kind: str) -> tuple[Any, list[bytes] | None]:
    """A base dataset, and its frames' JPEG bytes where the pixel data is encapsulated (added on writing)."""
    pydicom = require("pydicom")
    uids = pydicom.uid
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.sequence import Sequence

    colour = kind in ("jpeg_cine", "jpeg_cine_long", "raw_rgb_still", "rle_cine")
    count = {"jpeg_cine_long": LONG_FRAMES, "raw_rgb_still": 1, "raw_grey16_still": 1}.get(kind, BASE_FRAMES)
    frames = _frames(count, colour)
    multi = count > 1
    sop = uids.UltrasoundMultiFrameImageStorage if multi else uids.UltrasoundImageStorage
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = sop, uids.generate_uid()
    meta.TransferSyntaxUID = uids.JPEGBaseline8Bit if kind.startswith("jpeg") else uids.ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = sop, meta.MediaStorageSOPInstanceUID, "US"
    ds.Rows, ds.Columns = BASE_SHAPE
    ds.SamplesPerPixel = 3 if colour else 1
    ds.PhotometricInterpretation = ("YBR_FULL_422" if kind.startswith("jpeg") else "RGB") if colour else "MONOCHROME2"
    if colour:
        ds.PlanarConfiguration = 0
    bits = 16 if kind == "raw_grey16_still" else 8
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits, bits, bits - 1, 0
    if multi:
        ds.NumberOfFrames, ds.FrameTime = count, "33.3"
    ds.InstanceNumber = 1
    region = Dataset()
    region.RegionSpatialFormat, region.RegionDataType, region.RegionFlags = 1, 1, 0
    region.RegionLocationMinX0, region.RegionLocationMinY0 = 4, 4
    region.RegionLocationMaxX1, region.RegionLocationMaxY1 = 59, 43
    region.PhysicalUnitsXDirection, region.PhysicalUnitsYDirection = 3, 3
    region.PhysicalDeltaX, region.PhysicalDeltaY = 0.01, 0.01
    ds.SequenceOfUltrasoundRegions = Sequence([region])
    if kind.startswith("jpeg"):
        return ds, [_jpeg(frame) for frame in frames]
    stack = np.stack(frames)
    if bits == 16:
        stack = stack.astype(np.uint16) * 257
        ds.WindowCenter, ds.WindowWidth = "32768", "65535"
    if colour:
        stack = stack[..., ::-1]  # BGR -> RGB
    ds.PixelData = stack.tobytes()
    ds["PixelData"].VR = "OW" if bits == 16 else "OB"
    if kind == "rle_cine":
        ds.compress(uids.RLELossless, encoding_plugin="pydicom", generate_instance_uid=False)
    return ds, None


_BASE_CACHE: dict[str, tuple[bytes, list[bytes] | None]] = {}


def cached_base(kind: str) -> tuple[Any, list[bytes] | None]:
    """Bases are made once per process (JPEG encoding costs more than a whole case) and copied per recipe."""
    pydicom = require("pydicom")
    if kind not in _BASE_CACHE:
        ds, fragments = _base(kind)
        buffer = io.BytesIO()
        ds.save_as(buffer, enforce_file_format=True)
        _BASE_CACHE[kind] = (buffer.getvalue(), fragments)
    data, fragments = _BASE_CACHE[kind]
    return pydicom.dcmread(io.BytesIO(data)), fragments
