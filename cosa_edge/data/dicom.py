"""DICOM ultrasound: still images, cine loops and series folders, read one frame at a time.

Scanners and PACS export breast ultrasound as DICOM, not as video files: a still (Ultrasound Image
Storage), a cine loop (Ultrasound Multi-frame Image Storage, often JPEG-compressed YBR colour), or a
folder of instances. This module turns them into what the rest of cosa-edge consumes:

- frames as uint8 images, grey (H, W) or BGR (H, W, 3) in OpenCV's channel order, decoded one at a
  time (a cine loop can hold thousands of frames; only one is ever decoded in memory);
- the time of every frame from the timing tags, so that results carry real seconds;
- the Sequence of Ultrasound Regions, so that inference can run on the 2D tissue image alone and not
  on the spectral Doppler strip, the ECG trace or the colour bar beside it, and so that measurements can
  be given in millimetres from the region's physical spacing.

pydicom (the ``dicom`` extra) does the parsing and decoding; it is imported lazily so that cosa-edge
imports without it. Everything a user can fix (not DICOM, no image inside, a missing decoder, a
truncated file) is a :class:`CosaEdgeError` with one sentence. Nothing identifying a patient (names,
IDs, dates, UIDs, institution) leaves this module except inside the pydicom dataset itself
(:attr:`DicomImage.dataset`), and messages name files by their file name only, never their folder.
"""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from .._optional import require
from ..errors import CosaEdgeError

if TYPE_CHECKING:  # only for type hints: pydicom stays an optional, lazily imported dependency
    from pydicom.dataset import Dataset

#: DICOM Part 10: a 128-byte preamble, then these four bytes.
_MAGIC = b"DICM"
_MAGIC_OFFSET = 128

#: Region Spatial Format (0018,6012) and Region Data Type (0018,6014) values (PS3.3 C.8.5.5.1.1/2).
SPATIAL_2D, DATA_TISSUE = 1, 1
_SPATIAL_NAMES = {0: "none", 1: "2D", 2: "M-mode", 3: "spectral", 4: "waveform", 5: "graphics"}
_DATA_NAMES = {
    0: "none", 1: "tissue", 2: "colour flow", 3: "PW spectral Doppler", 4: "CW spectral Doppler",
    5: "Doppler mean trace", 6: "Doppler mode trace", 7: "Doppler max trace", 8: "volume trace",
    10: "ECG trace", 11: "pulse trace", 12: "phonocardiogram trace", 13: "grey bar", 14: "colour bar",
}
#: Physical Units X/Y Direction (0018,6024/6026) value for centimetres.
_UNITS_CM = 3

#: Reads this small are item tags and lengths; coming back empty there is pydicom's normal end of items.
_TAG_READ_SIZE = 8

#: JPEG Baseline (Process 1), the transfer syntax most ultrasound cines are exported in.
_JPEG_BASELINE = "1.2.840.10008.1.2.4.50"
#: Photometric interpretations whose JPEG baseline frames a standard JPEG decoder turns into the right image:
#: one grey component, or YCbCr components that it converts to colour (an "RGB" JPEG may hold untransformed
#: RGB, which it would convert wrongly, so that one stays with pydicom).
_FAST_JPEG_PHOTOMETRIC = ("MONOCHROME2", "YBR_FULL_422", "YBR_FULL")
#: The fast decoder must agree with pydicom's on the first frame to be used: JPEG decoders may round the
#: inverse DCT differently (a grey level or two), but never by more than this on average or this at most.
_FAST_JPEG_MEAN_TOLERANCE, _FAST_JPEG_MAX_TOLERANCE = 1.0, 24


class _NoImageError(CosaEdgeError):
    """The file is DICOM but holds no image (a report, a DICOMDIR, a presentation state)."""


# --------------------------------------------------------------------------------------------------
# Detection and the header


def is_dicom(path: Path) -> bool:
    """True when ``path`` is a DICOM Part 10 file, judged by content (the suffix means nothing in DICOM)."""
    try:
        with Path(path).open("rb") as handle:
            handle.seek(_MAGIC_OFFSET)
            return handle.read(len(_MAGIC)) == _MAGIC
    except OSError:  # missing, a folder, unreadable: not a DICOM file we can use
        return False


def _pydicom() -> ModuleType:
    return require("pydicom")


def _pixels() -> ModuleType:
    """``pydicom.pixels``, looked up at call time (tests replace its decoder lookup)."""
    _pydicom()
    return require("pydicom.pixels")


def _clean(exc: BaseException, path: Path) -> str:
    """The first line of a library's message, without the file's folder (it may name the patient)."""
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0].rstrip(" :")
    absolute = path.absolute()
    for full in (str(absolute), str(path)):
        text = text.replace(full, path.name)
    for folder in (str(absolute.parent), str(path.parent)):
        if folder not in ("", ".", os.sep):  # "." would take every full stop with it
            text = text.replace(folder, "<folder>")
    return text[:200]


def _read_header(path: Path) -> Dataset:
    """The dataset without its pixel data; a corrupt or non-DICOM file is a CosaEdgeError."""
    pydicom = _pydicom()
    try:
        with warnings.catch_warnings():
            # pydicom warns about odd values with the full path; the header is judged below instead.
            warnings.simplefilter("ignore")
            # stop_before_pixels: the header alone, so opening a long cine costs nothing, and a file cut
            # inside its pixel data still opens (pydicom drops every element when its value hits EOF).
            return pydicom.dcmread(path, stop_before_pixels=True)
    except Exception as exc:  # InvalidDicomError, EOFError, struct.error, ValueError...: all mean "corrupt"
        raise CosaEdgeError(
            f"{path.name} is not a readable DICOM file ({_clean(exc, path)}); check that it is a complete "
            "DICOM export from the scanner or PACS"
        ) from None


def _check_image_header(dataset: Dataset, name: str) -> None:
    """A CosaEdgeError unless the header describes an image: corrupt, truncated, or a non-image object.

    pydicom reads a cut or garbled header without complaint and returns what it got (often nothing), so
    the header is judged by what it holds.
    """
    syntax = dataset.file_meta.get("TransferSyntaxUID") if getattr(dataset, "file_meta", None) is not None else None
    sop_class = dataset.get("SOPClassUID")
    if len(dataset) == 0 or not syntax or not sop_class:
        raise CosaEdgeError(f"{name} has a corrupt or truncated DICOM header (no transfer syntax or SOP class could "
                            "be read); export it again from the scanner or PACS")
    if "Rows" in dataset and "Columns" in dataset:
        return
    kind = _uid_name(sop_class, "a private kind of DICOM object")
    if "Image" in kind:  # an image object without its image description: the header broke off
        raise CosaEdgeError(f"{name} has a corrupt or truncated DICOM header ({kind} without Rows and Columns); "
                            "export it again from the scanner or PACS")
    raise _NoImageError(f"{name} holds no image (its kind is {kind}); give a DICOM image or cine loop")


# --------------------------------------------------------------------------------------------------
# Values from the header


def _values(dataset: Any, keyword: str) -> list[Any]:
    """An element's values as a list (DICOM multi-values and single values alike); [] if absent or empty."""
    value = dataset.get(keyword) if dataset is not None else None
    if value is None or value == "":
        return []
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        return [value]
    return list(value)


def _number(dataset: Any, keyword: str) -> float | None:
    """The element's first value as a float, or None when absent or not a number (bad values are common)."""
    values = _values(dataset, keyword)
    try:
        return float(values[0]) if values else None
    except (TypeError, ValueError):
        return None


def _integer(dataset: Any, keyword: str) -> int | None:
    number = _number(dataset, keyword)
    return int(number) if number is not None and np.isfinite(number) else None


def _numbers(dataset: Any, keyword: str) -> list[float] | None:
    values = _values(dataset, keyword)
    try:
        return [float(value) for value in values] if values else None
    except (TypeError, ValueError):
        return None


def _uid_name(uid: Any, unknown: str) -> str:
    """A standard UID's name, or ``unknown`` for a private or unknown one (UIDs are never spelled out)."""
    name = getattr(uid, "name", "")
    return name if name and name != str(uid) else unknown


# --------------------------------------------------------------------------------------------------
# Ultrasound regions


@dataclass(frozen=True)
class UltrasoundRegion:
    """One item of the Sequence of Ultrasound Regions (0018,6011), clamped to the pixel matrix."""

    index: int  # position in the sequence, 0-based
    x: int
    y: int
    w: int
    h: int
    spatial_format: int  # 1 = 2D, 2 = M-mode, 3 = spectral, 4 = waveform, 5 = graphics
    data_type: int  # 1 = tissue, 2 = colour flow, 3 = PW spectral Doppler, 4 = CW spectral Doppler, ...
    spacing_mm: tuple[float, float] | None  # (dy, dx) in mm, where the physical units are centimetres
    clamped: bool  # the stated region reached past the pixel matrix

    @property
    def roi(self) -> tuple[int, int, int, int]:
        """(x, y, w, h) in pixels."""
        return (self.x, self.y, self.w, self.h)

    @property
    def is_tissue_2d(self) -> bool:
        """A B-mode tissue image: the only kind of region the model has been trained on."""
        return self.spatial_format == SPATIAL_2D and self.data_type == DATA_TISSUE


def _region_spacing(item: Any) -> tuple[float, float] | None:
    """(dy, dx) in mm from Physical Delta Y/X, only where both directions are in centimetres."""
    units = (_integer(item, "PhysicalUnitsXDirection"), _integer(item, "PhysicalUnitsYDirection"))
    if units != (_UNITS_CM, _UNITS_CM):
        return None  # seconds, cm/s, dB...: not a distance, so no spacing in mm
    dx, dy = _number(item, "PhysicalDeltaX"), _number(item, "PhysicalDeltaY")
    if dx is None or dy is None or not (np.isfinite(dx) and np.isfinite(dy)) or dx == 0 or dy == 0:
        return None
    return (abs(dy) * 10.0, abs(dx) * 10.0)  # a negative delta states a direction, not a smaller pixel


def _one_region(index: int, item: Any, rows: int, columns: int) -> tuple[UltrasoundRegion | None, str | None]:
    """One region clamped to the matrix, or None with the reason it was dropped; and a warning, if any."""
    corners = [_integer(item, key) for key in
               ("RegionLocationMinX0", "RegionLocationMinY0", "RegionLocationMaxX1", "RegionLocationMaxY1")]
    spatial = _integer(item, "RegionSpatialFormat") or 0
    data_type = _integer(item, "RegionDataType") or 0
    label = f"region {index} ({_SPATIAL_NAMES.get(spatial, spatial)}, {_DATA_NAMES.get(data_type, data_type)})"
    if any(value is None for value in corners):
        return None, f"{label} has no complete Region Location and was ignored"
    x0, y0, x1, y1 = (int(value) for value in corners)  # type: ignore[arg-type]
    # The corners are inclusive pixel coordinates (PS3.3 C.8.5.5.1): a region 0..639 is 640 pixels wide.
    cx0, cy0 = max(x0, 0), max(y0, 0)
    cx1, cy1 = min(x1, columns - 1), min(y1, rows - 1)
    if cx1 < cx0 or cy1 < cy0:
        return None, f"{label} lies wholly outside the {columns}x{rows} pixel matrix and was dropped"
    clamped = (cx0, cy0, cx1, cy1) != (x0, y0, x1, y1)
    region = UltrasoundRegion(index=index, x=cx0, y=cy0, w=cx1 - cx0 + 1, h=cy1 - cy0 + 1,
                              spatial_format=spatial, data_type=data_type, spacing_mm=_region_spacing(item),
                              clamped=clamped)
    warning = None
    if clamped:
        # Usually an export that resized or cropped the frames but kept the scanner's regions (then the
        # physical spacing may be off as well).
        warning = (f"{label} reached past the {columns}x{rows} pixel matrix and was clamped to "
                   f"x {cx0}-{cx1}, y {cy0}-{cy1}")
    return region, warning


def _regions_and_warnings(dataset: Any) -> tuple[list[UltrasoundRegion], list[str]]:
    rows, columns = _integer(dataset, "Rows") or 0, _integer(dataset, "Columns") or 0
    regions: list[UltrasoundRegion] = []
    notes: list[str] = []
    for index, item in enumerate(_values(dataset, "SequenceOfUltrasoundRegions")):
        region, warning = _one_region(index, item, rows, columns)
        if region is not None:
            regions.append(region)
        if warning:
            notes.append(warning)
    return regions, notes


def ultrasound_regions(dataset: Any) -> list[UltrasoundRegion]:
    """The Sequence of Ultrasound Regions, clamped to the pixel matrix; regions with no area left are dropped."""
    return _regions_and_warnings(dataset)[0]


def tissue_region(regions: list[UltrasoundRegion], choice: int | None = None) -> UltrasoundRegion | None:
    """The 2D tissue region to run on: the first one, or ``choice`` (0-based among them) for a dual view.

    Doppler spectra, M-mode strips, traces and colour-flow regions are never chosen: the model sees B-mode
    tissue only. None when the file has no 2D tissue region (the caller then uses the whole frame); an
    explicit ``choice`` that does not exist is an error, since it says the user expected another layout.
    """
    tissue = [region for region in regions if region.is_tissue_2d]
    if choice is None:
        return tissue[0] if tissue else None
    if not 0 <= choice < len(tissue):
        if not tissue:
            raise CosaEdgeError(f"2D tissue region {choice} was asked for but this file has no 2D tissue region; "
                                "leave the region choice out to use the whole frame")
        raise CosaEdgeError(f"2D tissue region {choice} was asked for but this file has {len(tissue)} 2D tissue "
                            f"region{'s' if len(tissue) > 1 else ''}; choose 0 to {len(tissue) - 1}")
    return tissue[choice]


# --------------------------------------------------------------------------------------------------
# Timing


@dataclass(frozen=True)
class _Timing:
    fps: float | None
    timestamps: list[float]
    source: str
    warnings: list[str]


def _frame_time(dataset: Any, frames: int) -> _Timing | None:
    """Frame Time (0018,1063): the same interval, in ms, between every pair of frames."""
    frame_time = _number(dataset, "FrameTime")
    if frame_time is None:
        return None
    if not (np.isfinite(frame_time) and frame_time > 0):
        return _Timing(None, [], "", [f"Frame Time {frame_time:g} ms is not positive and was ignored"])
    return _Timing(1000.0 / frame_time, [i * frame_time / 1000.0 for i in range(frames)], "frame_time", [])


def _frame_time_vector(dataset: Any, frames: int) -> _Timing | None:
    """Frame Time Vector (0018,1065): each frame's increment in ms from the previous one (the first is 0)."""
    increments = _numbers(dataset, "FrameTimeVector")
    if increments is None:
        return None
    notes: list[str] = []
    if len(increments) == frames - 1:
        # Some writers leave out the first frame's 0 increment.
        increments, notes = [0.0, *increments], ["Frame Time Vector had one entry too few; frame 0 was put at 0 s"]
    if len(increments) != frames or not all(np.isfinite(increments)) or any(step < 0 for step in increments[1:]):
        return _Timing(None, [], "", [f"Frame Time Vector ({len(increments)} entries for {frames} frames, or "
                                      "negative steps) does not fit the frames and was ignored"])
    times = np.cumsum(increments) / 1000.0
    times = times - times[0]  # seconds from the first frame, whatever the first entry holds
    steps = np.asarray(increments[1:])
    fps = 1000.0 / float(steps.mean()) if steps.size and steps.mean() > 0 else None
    return _Timing(fps, [float(t) for t in times], "frame_time_vector", notes)


def _cine_rate(dataset: Any, frames: int) -> _Timing | None:
    """Cine Rate (0018,0040): frames per second."""
    rate = _number(dataset, "CineRate")
    if rate is None:
        return None
    if not (np.isfinite(rate) and rate > 0):
        return _Timing(None, [], "", [f"Cine Rate {rate:g} is not positive and was ignored"])
    return _Timing(rate, [i / rate for i in range(frames)], "cine_rate", [])


def _timing(dataset: Any, frames: int) -> _Timing:
    """Frame times in PS3.3's order of precedence; the tags are used whatever Frame Increment Pointer says."""
    notes: list[str] = []
    for reader in (_frame_time, _frame_time_vector, _cine_rate):
        timing = reader(dataset, frames)
        if timing is None:
            continue
        notes += timing.warnings
        if timing.source:
            return _Timing(timing.fps, timing.timestamps, timing.source, notes)
    if frames > 1:
        notes.append("the file states no frame timing (Frame Time, Frame Time Vector or Cine Rate); "
                     "every timestamp is 0 s")
    # Zeros, not invented seconds: the caller sees timing_source "none" and picks its own frame rate.
    return _Timing(None, [0.0] * frames, "none", notes)


# --------------------------------------------------------------------------------------------------
# What the header says


@dataclass
class DicomInfo:
    """What a DICOM file holds, without anything that identifies the patient."""

    name: str  # the file name only
    frames: int
    rows: int
    columns: int
    fps: float | None
    timestamps: list[float]  # seconds from the first frame, one per frame
    timing_source: str  # "frame_time", "frame_time_vector", "cine_rate" or "none"
    photometric: str
    transfer_syntax: str  # its name, e.g. "JPEG Baseline (Process 1)"
    regions: list[UltrasoundRegion]
    pixel_spacing_mm: tuple[float, float] | None  # (dy, dx) from Pixel Spacing (0028,0030)
    instance_number: int | None
    warnings: list[str] = field(default_factory=list)


def _pixel_spacing(dataset: Any) -> tuple[float, float] | None:
    spacing = _numbers(dataset, "PixelSpacing")
    if not spacing or len(spacing) != 2 or not all(np.isfinite(spacing)) or min(spacing) <= 0:
        return None
    return (spacing[0], spacing[1])  # DICOM order: row spacing (dy), then column spacing (dx)


def _frame_count(dataset: Any, notes: list[str]) -> int:
    frames = _integer(dataset, "NumberOfFrames")
    if frames is None:
        return 1
    if frames < 1:
        notes.append(f"Number of Frames {frames} is not positive; the file was read as one frame")
        return 1
    return frames


def _build_info(dataset: Any, path: Path) -> DicomInfo:
    notes: list[str] = []
    frames = _frame_count(dataset, notes)
    timing = _timing(dataset, frames)
    regions, region_notes = _regions_and_warnings(dataset)
    syntax = getattr(dataset, "file_meta", None)
    syntax_uid = syntax.get("TransferSyntaxUID") if syntax is not None else None
    return DicomInfo(
        name=path.name,
        frames=frames,
        rows=_integer(dataset, "Rows") or 0,
        columns=_integer(dataset, "Columns") or 0,
        fps=timing.fps,
        timestamps=timing.timestamps,
        timing_source=timing.source,
        photometric=str(dataset.get("PhotometricInterpretation", "") or "").strip(),
        transfer_syntax=_uid_name(syntax_uid, "private or unknown transfer syntax") if syntax_uid else "none stated",
        regions=regions,
        pixel_spacing_mm=_pixel_spacing(dataset),
        instance_number=_integer(dataset, "InstanceNumber"),
        warnings=notes + timing.warnings + region_notes,
    )


# --------------------------------------------------------------------------------------------------
# Pixels to uint8 images


@dataclass(frozen=True)
class _PixelFormat:
    """How stored values become display values (read once from the header, used for every frame)."""

    photometric: str
    bits_stored: int
    signed: bool
    window: tuple[float, float] | None  # (centre, width) of the first VOI window, if any
    rescale: tuple[float, float]  # (slope, intercept) of the modality LUT


def _pixel_format(dataset: Any) -> _PixelFormat:
    centre, width = _number(dataset, "WindowCenter"), _number(dataset, "WindowWidth")
    window = (centre, width) if centre is not None and width is not None and width > 1 else None
    return _PixelFormat(
        photometric=str(dataset.get("PhotometricInterpretation", "") or "").strip().upper(),
        bits_stored=_integer(dataset, "BitsStored") or _integer(dataset, "BitsAllocated") or 8,
        signed=_integer(dataset, "PixelRepresentation") == 1,
        window=window,
        rescale=(_number(dataset, "RescaleSlope") or 1.0, _number(dataset, "RescaleIntercept") or 0.0),
    )


def _by_bit_depth(values: np.ndarray, bits: int, signed: bool) -> np.ndarray:
    """Stored values over their full range (from the bit depth, not the frame's min/max) onto 0..255."""
    if values.dtype == np.uint8 and not signed and bits >= 8:
        return values
    bits = max(1, min(bits, 8 * values.dtype.itemsize))
    low = -(2.0 ** (bits - 1)) if signed else 0.0
    scaled = (values.astype(np.float32) - low) * (255.0 / (2.0 ** bits - 1.0))
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def _by_window(values: np.ndarray, fmt: _PixelFormat) -> np.ndarray:
    """The linear VOI window of PS3.3 C.11.2.1.2.1, after the modality rescale."""
    centre, width = fmt.window  # type: ignore[misc]
    slope, intercept = fmt.rescale
    modality = values.astype(np.float32) * slope + intercept
    scaled = ((modality - (centre - 0.5)) / (width - 1.0) + 0.5) * 255.0
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def _grey(values: np.ndarray, fmt: _PixelFormat) -> np.ndarray:
    """MONOCHROME1/2 as uint8 where higher is brighter."""
    if values.dtype == np.uint8 and not fmt.signed:
        # 8-bit ultrasound is already display values; a window there is display advice, and applying it
        # would change what the model sees compared with the same scanner's video output.
        grey = values
    elif fmt.window is not None:
        grey = _by_window(values, fmt)
    else:
        grey = _by_bit_depth(values, fmt.bits_stored, fmt.signed)
    if fmt.photometric == "MONOCHROME1":
        grey = 255 - grey  # MONOCHROME1 shows its lowest value as white
    return np.ascontiguousarray(grey)


def _palette(values: np.ndarray, dataset: Any, name: str) -> np.ndarray:
    """PALETTE COLOR through its lookup table, as uint8 RGB."""
    pixels = _pixels()
    try:
        rgb = pixels.apply_color_lut(values, dataset)
    except Exception as exc:  # a missing or malformed table is the file's fault, not ours
        raise CosaEdgeError(f"{name} is PALETTE COLOR but its colour lookup table cannot be used ({exc}); "
                            "export it from the scanner or PACS as RGB") from None
    if rgb.dtype != np.uint8:
        rgb = (rgb.astype(np.uint32) >> 8).astype(np.uint8)  # 16-bit table entries: keep the high byte
    return rgb


def _to_image(values: np.ndarray, fmt: _PixelFormat, dataset: Any, name: str) -> np.ndarray:
    """A decoded frame as uint8 grey (H, W) or BGR (H, W, 3)."""
    if values.ndim == 2 and fmt.photometric == "PALETTE COLOR":
        rgb = _palette(values, dataset, name)
    elif values.ndim == 2:
        return _grey(values, fmt)
    else:
        # pydicom has already turned YBR_FULL / YBR_FULL_422 / YBR_RCT / YBR_ICT into RGB.
        rgb = _by_bit_depth(values, fmt.bits_stored, fmt.signed) if values.dtype != np.uint8 else values
    return np.ascontiguousarray(rgb[..., 2::-1])  # RGB -> BGR: every other image in cosa-edge is OpenCV's


# --------------------------------------------------------------------------------------------------
# Reading frames


class _EndWatchingReader(io.BufferedReader):
    """A file reader that notices a read of frame data that the end of the file cut short.

    pydicom and the JPEG decoders accept a frame that the end of a truncated file cuts in half and
    return a half-grey image, with no error; this is how such a frame is told apart from a whole one.
    """

    def __init__(self, raw: io.RawIOBase) -> None:
        super().__init__(raw)
        self.cut_short = False

    def read(self, size: int | None = -1) -> bytes:
        data = super().read(size)
        # Small reads are item tags and lengths; an empty one there is the normal end of the items.
        if size is not None and size > _TAG_READ_SIZE and len(data) < size:
            self.cut_short = True
        return data


def _decoder_check(transfer_syntax: Any, name: str) -> None:
    """A clear error when pydicom cannot decode the file's transfer syntax or its plugins are missing."""
    if not transfer_syntax:
        raise CosaEdgeError(f"{name} states no transfer syntax in its file meta information, so its pixels "
                            "cannot be decoded; export it again from the scanner or PACS")
    syntax = _uid_name(transfer_syntax, "a private or unknown transfer syntax")
    try:
        decoder = _pixels().get_decoder(transfer_syntax)
    except NotImplementedError:
        raise CosaEdgeError(f"{name} is encoded as {syntax}, which pydicom cannot decode; export it from the "
                            "scanner or PACS as uncompressed, JPEG or JPEG 2000 DICOM") from None
    if not decoder.is_available:
        missing = "; ".join(decoder.missing_dependencies) or "no decoding plugin"
        raise CosaEdgeError(f"{name} is compressed as {syntax}, whose decoder is not installed ({missing}); "
                            "install it with: pip install 'cosa-edge[dicom]'")


def _ordinal_stop(index: int, total: int, reason: str) -> str:
    return (f"decoding stopped at frame {index + 1} of {total}: {reason}; "
            f"the {index} frame{'s' if index != 1 else ''} before it were processed")


class DicomImage:
    """One DICOM instance (a still or a cine loop) as a stream of frames.

    Opening reads the header only; :meth:`frames` decodes one frame at a time.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        name = self.path.name
        if not self.path.is_file():
            raise CosaEdgeError(f"{name} does not exist or is not a file; check the path")
        if not is_dicom(self.path):
            raise CosaEdgeError(f"{name} is not a DICOM file (no 'DICM' marker after the 128-byte preamble); "
                                "give a DICOM file exported from the scanner or PACS")
        #: the pydicom dataset without pixel data; the only thing here that holds patient attributes
        self.dataset = _read_header(self.path)
        _check_image_header(self.dataset, name)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # invalid values are handled (ignored) value by value
                self.info = _build_info(self.dataset, self.path)
                self._format = _pixel_format(self.dataset)
        except CosaEdgeError:
            raise
        except Exception as exc:  # a value pydicom cannot convert at all
            raise CosaEdgeError(f"{name} has a corrupt header ({_clean(exc, self.path)}); export it again from "
                                "the scanner or PACS") from None
        self.stopped_early: str | None = None

    def check_decoder(self) -> None:
        """Raise the one-line error now if this file's transfer syntax cannot be decoded here, before a
        pipeline opens its outputs (frames() checks it again)."""
        _decoder_check(self.dataset.file_meta.get("TransferSyntaxUID"), self.info.name)

    def __repr__(self) -> str:  # never the dataset's repr: it holds the patient's attributes
        info = self.info
        return f"DicomImage({info.name!r}, frames={info.frames}, {info.columns}x{info.rows}, {info.photometric})"

    def frames(self) -> Iterator[tuple[int, float, np.ndarray]]:
        """(index, timestamp in s, uint8 grey or BGR image), one frame decoded at a time.

        A truncated or partly corrupt multi-frame file yields the frames that decode, then stops and sets
        :attr:`stopped_early`; a file of which no frame decodes is a CosaEdgeError.
        """
        self.stopped_early = None
        name, total = self.info.name, self.info.frames
        _decoder_check(self.dataset.file_meta.get("TransferSyntaxUID"), name)
        if self._fast_jpeg_agrees():
            yield from self._fast_jpeg_frames()
            return
        pixels = _pixels()
        index, reason = 0, ""
        try:
            raw = io.FileIO(self.path, "rb")
        except OSError as exc:  # moved or deleted since the header was read
            raise CosaEdgeError(f"{name} can no longer be read ({exc.strerror}); check the file") from None
        with _EndWatchingReader(raw) as reader:
            # From a file object pydicom reads each frame's bytes when it decodes it, so memory holds one frame.
            # Explicit indices make it fetch frame k's bytes while decoding frame k (without them it reads one
            # frame ahead), so a read that the end of the file cuts short belongs to the frame being decoded.
            decoded = pixels.iter_pixels(reader, indices=range(total))
            try:
                while index < total:
                    values, reason = self._next_frame(decoded)
                    if reader.cut_short:  # the real cause, whatever the decoder made of the half frame
                        reason = "the file ends inside this frame (it is truncated)"
                        break
                    if values is None:
                        break
                    yield index, self._timestamp(index), _to_image(values, self._format, self.dataset, name)
                    index += 1
            finally:
                decoded.close()  # before the file closes: pydicom's generator seeks the file as it ends
        if index < total:
            self._stopped(index, total, reason or "the file holds fewer frames than its header states "
                                                  "(it is truncated)")

    # JPEG baseline through OpenCV: pydicom's pylibjpeg path took 9-11 ms a 640x480 frame here, against 2 ms
    # for OpenCV's libjpeg-turbo on the same bytes, which held the streaming pipeline to 0.68x of the engine's
    # throughput on a DICOM cine. pydicom still finds the frames; only the JPEG decoding changes hands.

    def _fast_jpeg_eligible(self) -> bool:
        dataset, fmt = self.dataset, self._format
        return (str(dataset.file_meta.get("TransferSyntaxUID", "")) == _JPEG_BASELINE
                and _integer(dataset, "BitsAllocated") == 8 and fmt.photometric in _FAST_JPEG_PHOTOMETRIC
                and _integer(dataset, "SamplesPerPixel") == (1 if fmt.photometric == "MONOCHROME2" else 3))

    def _fast_jpeg_agrees(self) -> bool:
        """Whether OpenCV decodes this file's first frame as pydicom does (checked once per file)."""
        if not hasattr(self, "_fast_ok"):
            self._fast_ok = False
            if self._fast_jpeg_eligible():
                with contextlib.suppress(Exception):  # any trouble here: pydicom decodes, as without the fast path
                    fast = next(iter(self._fast_jpeg_frames(check=False)))[2]
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        reference = _to_image(_pixels().pixel_array(self.path, index=0), self._format,
                                              self.dataset, self.info.name)
                    difference = np.abs(fast.astype(np.int16) - reference.astype(np.int16))
                    self._fast_ok = (fast.shape == reference.shape
                                     and float(difference.mean()) <= _FAST_JPEG_MEAN_TOLERANCE
                                     and int(difference.max()) <= _FAST_JPEG_MAX_TOLERANCE)
        return self._fast_ok

    def _fast_jpeg_frames(self, check: bool = True) -> Iterator[tuple[int, float, np.ndarray]]:
        """The frames' JPEG bytes found by pydicom, read from the file one frame at a time, decoded by OpenCV."""
        pydicom = _pydicom()
        from pydicom.encaps import generate_frames

        name, total = self.info.name, self.info.frames
        shape = (self.info.rows, self.info.columns)
        index, reason = 0, ""
        with _EndWatchingReader(io.FileIO(self.path, "rb")) as reader:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                pydicom.dcmread(reader, stop_before_pixels=True)  # leaves the file at the Pixel Data element
            element = reader.read(12)
            # (7FE0,0010), VR OB, undefined length: encapsulated frames follow (explicit VR little endian).
            if element[:4] != b"\xe0\x7f\x10\x00" or element[8:12] != b"\xff\xff\xff\xff":
                raise ValueError("no encapsulated Pixel Data where the header ends")
            encoded = generate_frames(reader, number_of_frames=total)
            while index < total:
                try:
                    data = next(encoded)
                except StopIteration:
                    break
                except Exception as exc:  # a damaged item structure: the frames before it stand
                    reason = f"the frame could not be read ({_clean(exc, self.path)})"
                    break
                if reader.cut_short:
                    reason = "the file ends inside this frame (it is truncated)"
                    break
                image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
                if image is None or image.shape[:2] != shape:
                    reason = "the frame could not be decoded (its JPEG data is damaged)"
                    break
                yield index, self._timestamp(index), np.ascontiguousarray(image)
                index += 1
        if check and index < total:
            self._stopped(index, total, reason or "the file holds fewer frames than its header states "
                                                  "(it is truncated)")

    def _next_frame(self, decoded: Iterator[np.ndarray]) -> tuple[np.ndarray | None, str]:
        """The next decoded frame, or None with the reason decoding stopped (no pydicom exception escapes)."""
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # per call, not across yields: the caller's filters stay theirs
                return next(decoded), ""
        except StopIteration:
            return None, ""
        except AttributeError as exc:
            if "pixel data" in str(exc).lower():  # pydicom's "no 'Pixel Data' ... element"
                raise _NoImageError(f"{self.info.name} holds no image (it has no Pixel Data); give a DICOM image "
                                    "or cine loop") from None
            return None, f"the frame could not be decoded ({_clean(exc, self.path)})"
        except Exception as exc:  # RuntimeError from every plugin, ValueError from a short frame, ...
            return None, f"the frame could not be decoded ({_clean(exc, self.path)})"

    def _timestamp(self, index: int) -> float:
        stamps = self.info.timestamps
        return stamps[index] if index < len(stamps) else 0.0

    def _stopped(self, index: int, total: int, reason: str) -> None:
        if index == 0:
            raise CosaEdgeError(f"no frame of {self.info.name} could be decoded: {reason}; check that the file "
                                "is a complete export from the scanner or PACS")
        self.stopped_early = _ordinal_stop(index, total, reason)


def read_dicom_grey(path: Path) -> np.ndarray:
    """The first frame as uint8 (H, W) grey, for training images (colour is converted as OpenCV does)."""
    image = DicomImage(path)
    frames = image.frames()
    try:
        _, _, frame = next(frames)
    except StopIteration:  # frames() raises when nothing decodes; this is only belt and braces
        raise CosaEdgeError(f"{image.info.name} has no frame that decodes; export it again") from None
    finally:
        frames.close()  # decode nothing more of a long cine loop
    return frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)


def dicom_series(folder: Path) -> list[DicomImage]:
    """Every DICOM image in ``folder`` (by content, any suffix), sorted by Instance Number, then file name.

    Each instance stays its own stream (sizes may differ; the caller restarts smoothing per instance).
    DICOM files without an image (a DICOMDIR, a structured report) are skipped.
    """
    folder = Path(folder)
    if not folder.is_dir():
        # Folders are not named in messages: exports often name them after the patient.
        raise CosaEdgeError("the DICOM series path is not a folder; give the folder that holds the DICOM files")
    candidates = sorted(entry for entry in folder.iterdir() if entry.is_file() and is_dicom(entry))
    images: list[DicomImage] = []
    for path in candidates:
        try:
            images.append(DicomImage(path))
        except _NoImageError:
            continue  # exports put reports and DICOMDIRs beside the images
    if not images:
        what = "no DICOM files" if not candidates else "DICOM files but no image among them"
        raise CosaEdgeError(f"the DICOM series folder holds {what}; give a folder of DICOM ultrasound images or "
                            "cine loops")
    # Instance Number is the scanner's order; files without one go last, in file-name order.
    images.sort(key=lambda image: (image.info.instance_number is None, image.info.instance_number or 0,
                                   image.info.name))
    return images
