"""What a DICOM file's Pixel Data holds, read from the data itself: how many frames, and how large they are.

Headers lie more often than data: an export that says Number of Frames 0 over 40 JPEG fragments, or Rows 60000
over JPEG frames of 480 rows. The reader believes the data where the data can be counted (cosa_edge/data/dicom.py
says so in one line): encapsulated frames are counted by the markers that start them (a JPEG frame starts with
SOI, a JPEG 2000 codestream with SOC; RLE has one fragment a frame), and a JPEG frame's size is in its own SOF
header. Native (uncompressed) data holds as many frames as whole frames fit in its length.

Only the item tags and lengths are read, each fragment's first bytes, and the first frame's JPEG header: the
fragments themselves are skipped over, so this costs a few reads even for a long cine.
"""

from __future__ import annotations

import struct
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from ..errors import CosaEdgeError
from .dicom_header import pydicom_module, tag_integer

_PIXEL_DATA_TAG = b"\xe0\x7f\x10\x00"  # (7FE0,0010), little endian
_ITEM, _SEQUENCE_END = 0xE000FFFE, 0xE0DDFFFE  # (FFFE,E000), (FFFE,E0DD) read as little-endian uint32
UNDEFINED_LENGTH = 0xFFFFFFFF
_IMPLICIT_LITTLE, _BIG_ENDIAN = "1.2.840.10008.1.2", "1.2.840.10008.1.2.2"
#: VRs whose explicit little-endian element header has 2 reserved bytes and a 4-byte length (PS3.5 7.1.2).
_LONG_VRS = {b"OB", b"OW", b"OF", b"OD", b"OL", b"OV", b"SQ", b"UN", b"UC", b"UR", b"UT", b"SV", b"UV"}
#: JPEG (baseline, extended, lossless, JPEG-LS) frames start with SOI; JPEG 2000 with SOC, or a JP2 signature box.
_JPEG_SYNTAXES = ("1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.57",
                  "1.2.840.10008.1.2.4.70", "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81")
_J2K_SYNTAXES = ("1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.4.201",
                 "1.2.840.10008.1.2.4.202", "1.2.840.10008.1.2.4.203")
_RLE = "1.2.840.10008.1.2.5"
_SOI, _SOC, _JP2 = b"\xff\xd8", b"\xff\x4f", b"\x00\x00\x00\x0cjP"
#: SOF markers (baseline, extended, progressive, lossless, JPEG-LS) that carry a frame's height and width.
_SOF_MARKERS = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF, 0xF7}
#: The first fragment is read whole to find its SOF; a frame's header never lies further in than this.
_SOF_SEARCH_BYTES = 1 << 16


@dataclass(frozen=True)
class PixelDataLayout:
    """The frames that Pixel Data holds, as far as the data tells."""

    encapsulated: bool
    frames: int | None  # frames counted in the data; None where they cannot be counted
    how: str  # what was counted, for the note: "JPEG frames", "whole frames"...
    frame_size: tuple[int, int] | None  # (rows, columns) from the first frame's own JPEG header, where it has one
    truncated: bool  # the file ends inside the Pixel Data


def pixel_data_length(handle: BinaryIO, syntax: str) -> int | None:
    """Past the Pixel Data element's header: its value length (0xFFFFFFFF: encapsulated); None if not there."""
    head = handle.read(8)
    if len(head) < 8 or head[:4] != _PIXEL_DATA_TAG:
        return None
    if syntax == _IMPLICIT_LITTLE:
        return struct.unpack("<I", head[4:8])[0]
    if head[4:6] in _LONG_VRS:
        rest = handle.read(4)
        return struct.unpack("<I", rest)[0] if len(rest) == 4 else None
    return struct.unpack("<H", head[6:8])[0]


def _jpeg_frame_size(data: bytes) -> tuple[int, int] | None:
    """(rows, columns) from a JPEG frame's SOF segment; None where there is none to read."""
    position = 2  # after SOI
    while position + 4 <= len(data):
        if data[position] != 0xFF:
            return None
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        length = struct.unpack(">H", data[position + 2:position + 4])[0]
        if marker in _SOF_MARKERS and position + 9 <= len(data):
            rows, columns = struct.unpack(">HH", data[position + 5:position + 9])
            return (rows, columns) if rows and columns else None
        if marker in (0xD9, 0xDA) or length < 2:  # end of image, or scan data before any SOF
            return None
        position += 2 + length
    return None


def _frame_start(fragment: bytes, syntax: str) -> bool | None:
    """Whether a fragment starts a frame; None where the transfer syntax gives no way to tell."""
    if syntax in _JPEG_SYNTAXES:
        return fragment.startswith(_SOI)
    if syntax in _J2K_SYNTAXES:
        return fragment.startswith((_SOC, _JP2))
    if syntax == _RLE:
        return True  # PS3.5 A.4.2: one fragment a frame
    return None


def _encapsulated(handle: BinaryIO, syntax: str) -> PixelDataLayout:
    """Count the frames of encapsulated Pixel Data by the fragments that start one."""
    here = handle.tell()
    end = handle.seek(0, 2)
    handle.seek(here)
    frames, countable, size = 0, True, None
    index = 0  # item 0 is the Basic Offset Table, whatever it holds; fragments follow
    while True:
        head = handle.read(8)
        if len(head) < 8:
            return PixelDataLayout(True, frames if countable else None, _how(syntax), size, truncated=True)
        tag, length = struct.unpack("<II", head)
        if tag == _SEQUENCE_END:
            break
        if tag != _ITEM or length == UNDEFINED_LENGTH:
            # A damaged item structure: what follows cannot be counted (the decoder says where it broke).
            return PixelDataLayout(True, frames if countable and frames else None, _how(syntax), size, False)
        body = handle.tell()
        if body + length > end:  # the file ends inside this item: its frame is not whole, and is not counted
            return PixelDataLayout(True, frames if countable else None, _how(syntax), size, truncated=True)
        if index > 0:
            start = handle.read(min(length, _SOF_SEARCH_BYTES if index == 1 else len(_JP2)))
            begins = _frame_start(start, syntax)
            if begins is None or (index == 1 and not begins):
                countable = False  # no marker to count by, or data that does not start with a frame
            frames += bool(begins)
            if index == 1 and syntax in _JPEG_SYNTAXES:
                size = _jpeg_frame_size(start)
        handle.seek(body + length)
        index += 1
    return PixelDataLayout(True, frames if countable else None, _how(syntax), size, truncated=False)


def _how(syntax: str) -> str:
    if syntax in _JPEG_SYNTAXES:
        return "JPEG frames"
    if syntax in _J2K_SYNTAXES:
        return "JPEG 2000 frames"
    return "RLE frames" if syntax == _RLE else "fragments"


def _native_frame_bytes(dataset: Any) -> int | None:
    rows, columns = tag_integer(dataset, "Rows"), tag_integer(dataset, "Columns")
    samples, bits = tag_integer(dataset, "SamplesPerPixel") or 1, tag_integer(dataset, "BitsAllocated")
    if not rows or not columns or not bits or bits % 8 or rows < 1 or columns < 1 or samples < 1:
        return None  # bit-packed (1-bit) data and unreadable descriptions are left to the decoder
    photometric = str(dataset.get("PhotometricInterpretation", "") or "").strip().upper()
    per_pixel = 2 if photometric == "YBR_FULL_422" and samples == 3 else samples  # 4:2:2 keeps 2 samples a pixel
    return rows * columns * per_pixel * (bits // 8)


def pixel_data_layout(path: Path, dataset: Any) -> PixelDataLayout | None:
    """What ``path``'s Pixel Data holds; None where it cannot be told (no Pixel Data, big endian, unreadable)."""
    syntax = str(dataset.file_meta.get("TransferSyntaxUID", "") or "") if getattr(dataset, "file_meta", None) else ""
    if not syntax or syntax == _BIG_ENDIAN:
        return None
    pydicom = pydicom_module()
    try:
        with Path(path).open("rb") as handle:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                pydicom.dcmread(handle, stop_before_pixels=True)  # leaves the file at the Pixel Data element
            length = pixel_data_length(handle, syntax)
            if length is None:
                return None
            if length == UNDEFINED_LENGTH:
                return _encapsulated(handle, syntax)
            start = handle.tell()
            handle.seek(0, 2)
            present = handle.tell() - start
    except (OSError, ValueError, EOFError, struct.error):
        return None
    except Exception:  # pydicom's own errors on a damaged header: the header check says those
        return None
    frame_bytes = _native_frame_bytes(dataset)
    if frame_bytes is None:
        return None
    return PixelDataLayout(False, min(length, present) // frame_bytes, "whole frames", None,
                           truncated=present < length)


# --------------------------------------------------------------------------------------------------
# Header against data: what the reader believes


#: Image Pixel elements that must hold one number each where present (PS3.3 C.7.6.3): a reader that met three
#: values, or bytes that are no number, would otherwise fail deep in the decoder with Python's own words.
_ONE_NUMBER = {"Rows": "Rows", "Columns": "Columns", "BitsAllocated": "Bits Allocated",
               "BitsStored": "Bits Stored", "HighBit": "High Bit", "SamplesPerPixel": "Samples per Pixel",
               "PixelRepresentation": "Pixel Representation", "PlanarConfiguration": "Planar Configuration",
               "NumberOfFrames": "Number of Frames"}


def _raw_values(dataset: Any, keyword: str) -> list[Any]:
    value = dataset.get(keyword)
    if value is None or value == "":
        return []
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__"):
        return [value]
    return list(value)


def _is_number(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def check_pixel_description(dataset: Any, name: str, layout: PixelDataLayout | None) -> None:
    """A CosaEdgeError for an Image Pixel element that holds several values or no number."""
    for keyword, label in _ONE_NUMBER.items():
        if keyword not in dataset:
            continue
        values = _raw_values(dataset, keyword)
        if not values:  # present but empty: pydicom's decoder would fail on it with int('')
            raise CosaEdgeError(f"{name} has a corrupt header: {label} is empty; export it again from the scanner "
                                "or PACS")
        if len(values) > 1:
            raise CosaEdgeError(f"{name} has a corrupt header: {label} holds {len(values)} values where DICOM allows "
                                "one; export it again from the scanner or PACS")
        if values and not _is_number(values[0]):
            # Not even Number of Frames can be counted from the data instead here: pydicom's decoder converts
            # it to an integer itself before it takes any value of ours (pydicom 3.0, as_pixel_options).
            counted = (f" (its pixel data holds {layout.frames} {layout.how})"
                       if keyword == "NumberOfFrames" and layout is not None and layout.frames else "")
            raise CosaEdgeError(f"{name} has a corrupt header: {label} is not a number{counted}; export it again "
                                "from the scanner or PACS")


def believed_frame_count(dataset: Any, layout: PixelDataLayout | None, notes: list[str]) -> int:
    """The number of frames to read: the data's count where it can be made, else Number of Frames (else 1).

    Where the two disagree, ``notes`` gets one line saying so; a file cut short keeps its header's count, so that
    the decoder stops where the file ends and says the file is truncated."""
    present = "NumberOfFrames" in dataset
    stated = tag_integer(dataset, "NumberOfFrames")
    counted = layout.frames if layout is not None and layout.frames else None
    if counted is None:
        if stated is not None and stated < 1:
            notes.append(f"Number of Frames {stated} is not positive; the file was read as one frame")
            return 1
        return stated if stated is not None else 1
    if stated == counted or (not present and counted == 1):
        return counted
    assert layout is not None  # counted is not None
    if stated is not None and stated > counted and (layout.truncated or not layout.encapsulated):
        return stated  # the file ends early: decoding stops at its end and says it is truncated
    said = f"says {stated}" if stated is not None else "is missing"  # one that is no number was refused before
    if layout.truncated:
        # The frame the file ends inside is counted too, so that decoding stops there and says the file is cut
        # (as it does against a stated count), instead of a cut file looking whole.
        notes.append(f"Number of Frames {said}; the pixel data holds {counted} whole {layout.how} before the "
                     "file ends (it is truncated)")
        return counted + 1
    every = f"all {counted} were read" if counted > 1 else "it was read"
    notes.append(f"Number of Frames {said} but the pixel data holds {counted} {layout.how}; {every}")
    return counted


def believed_frame_size(dataset: Any, layout: PixelDataLayout | None, name: str,
                        notes: list[str]) -> tuple[int, int]:
    """(rows, columns) to read: a JPEG frame's own size where it has one, else Rows and Columns, which must then
    be positive."""
    rows, columns = tag_integer(dataset, "Rows"), tag_integer(dataset, "Columns")
    data = layout.frame_size if layout is not None else None
    if data is not None and data != (rows, columns):
        stated = f"{columns if columns is not None else '?'}x{rows if rows is not None else '?'}"
        notes.append(f"Columns x Rows say {stated} but the frames are {data[1]}x{data[0]} (their own JPEG "
                     f"headers); they were read as {data[1]}x{data[0]}")
        return data
    for value, label in ((rows, "Rows"), (columns, "Columns")):
        if value is None or value < 1:
            said = "missing or not a number" if value is None else f"{value}"
            raise CosaEdgeError(f"{name} has a corrupt header: {label} is {said}, so its frames have no size; export "
                                "it again from the scanner or PACS")
    if layout is not None and not layout.encapsulated and layout.frames == 0 and not layout.truncated:
        # Rows and Columns (or the bit depth) describe larger frames than the pixel data holds: no frame to read.
        raise CosaEdgeError(f"{name} has a corrupt header: its pixel data is smaller than one {columns}x{rows} frame "
                            "as Columns, Rows, Samples per Pixel and Bits Allocated describe it; export it again from "
                            "the scanner or PACS")
    return rows, columns  # type: ignore[return-value]
