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

This module reads frames; what it reads them with lives beside it: the header and its values
(dicom_header.py), the ultrasound regions (dicom_regions.py), frame times (dicom_timing.py) and the
conversion of decoded values to uint8 images (dicom_pixels.py).
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..errors import CosaEdgeError
from .dicom_header import (
    NoImageError,
    check_image_header,
    clean_message,
    is_dicom,
    pixels_module,
    pydicom_module,
    read_header,
    tag_integer,
    uid_name,
)
from .dicom_frames import (
    UNDEFINED_LENGTH,
    PixelDataLayout,
    believed_frame_count,
    believed_frame_size,
    check_pixel_description,
    pixel_data_layout,
    pixel_data_length,
)
from .dicom_pixels import pixel_format, to_image
from .dicom_regions import (
    DATA_TISSUE,
    SPATIAL_2D,
    UltrasoundRegion,
    pixel_spacing,
    regions_and_warnings,
    tissue_region,
    ultrasound_regions,
)
from .dicom_timing import frame_timing

__all__ = [
    "DATA_TISSUE", "SPATIAL_2D", "DicomImage", "DicomInfo", "UltrasoundRegion", "dicom_series", "is_dicom",
    "read_dicom_grey", "tissue_region", "ultrasound_regions",
]


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


def _build_info(dataset: Any, path: Path, layout: PixelDataLayout | None) -> DicomInfo:
    notes: list[str] = []
    # Where the header and the pixel data disagree, the data is believed (data/dicom_frames.py), with a note.
    check_pixel_description(dataset, path.name, layout)
    rows, columns = believed_frame_size(dataset, layout, path.name, notes)
    frames = believed_frame_count(dataset, layout, notes)
    timing = frame_timing(dataset, frames)
    regions, region_notes = regions_and_warnings(dataset, (rows, columns))
    syntax = getattr(dataset, "file_meta", None)
    syntax_uid = syntax.get("TransferSyntaxUID") if syntax is not None else None
    return DicomInfo(
        name=path.name,
        frames=frames,
        rows=rows,
        columns=columns,
        fps=timing.fps,
        timestamps=timing.timestamps,
        timing_source=timing.source,
        photometric=str(dataset.get("PhotometricInterpretation", "") or "").strip(),
        transfer_syntax=uid_name(syntax_uid, "private or unknown transfer syntax") if syntax_uid else "none stated",
        regions=regions,
        pixel_spacing_mm=pixel_spacing(dataset),
        instance_number=tag_integer(dataset, "InstanceNumber"),
        warnings=notes + timing.warnings + region_notes,
    )


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
    syntax = uid_name(transfer_syntax, "a private or unknown transfer syntax")
    try:
        decoder = pixels_module().get_decoder(transfer_syntax)
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
        self.dataset = read_header(self.path)
        try:
            # pydicom converts an element at its first use: one it cannot convert (an unknown VR) raises here.
            check_image_header(self.dataset, name)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # invalid values are handled (ignored) value by value
                self.info = _build_info(self.dataset, self.path, pixel_data_layout(self.path, self.dataset))
                self._format = pixel_format(self.dataset)
            # What the decoder must be told where the data was believed over the header.
            self._decode_options = {"number_of_frames": self.info.frames, "rows": self.info.rows,
                                    "columns": self.info.columns}
        except CosaEdgeError:
            raise
        except Exception as exc:  # a value pydicom cannot convert at all
            raise CosaEdgeError(f"{name} has a corrupt header ({clean_message(exc, self.path)}); export it again from "
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
        pixels = pixels_module()
        index, reason = 0, ""
        try:
            raw = io.FileIO(self.path, "rb")
        except OSError as exc:  # moved or deleted since the header was read
            raise CosaEdgeError(f"{name} can no longer be read ({exc.strerror}); check the file") from None
        with _EndWatchingReader(raw) as reader:
            # From a file object pydicom reads each frame's bytes when it decodes it, so memory holds one frame.
            # Explicit indices make it fetch frame k's bytes while decoding frame k (without them it reads one
            # frame ahead), so a read that the end of the file cuts short belongs to the frame being decoded.
            decoded = pixels.iter_pixels(reader, indices=range(total), **self._decode_options)
            try:
                while index < total:
                    values, reason = self._next_frame(decoded)
                    if reader.cut_short:  # the real cause, whatever the decoder made of the half frame
                        reason = "the file ends inside this frame (it is truncated)"
                        break
                    if values is None:
                        break
                    yield index, self._timestamp(index), to_image(values, self._format, self.dataset, name)
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
                and tag_integer(dataset, "BitsAllocated") == 8 and fmt.photometric in _FAST_JPEG_PHOTOMETRIC
                and tag_integer(dataset, "SamplesPerPixel") == (1 if fmt.photometric == "MONOCHROME2" else 3))

    def _fast_jpeg_agrees(self) -> bool:
        """Whether OpenCV decodes this file's first frame as pydicom does (checked once per file)."""
        if not hasattr(self, "_fast_ok"):
            self._fast_ok = False
            if self._fast_jpeg_eligible():
                with contextlib.suppress(Exception):  # any trouble here: pydicom decodes, as without the fast path
                    fast = next(iter(self._fast_jpeg_frames(check=False)))[2]
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        first = pixels_module().pixel_array(self.path, index=0, **self._decode_options)
                        reference = to_image(first, self._format, self.dataset, self.info.name)
                    difference = np.abs(fast.astype(np.int16) - reference.astype(np.int16))
                    self._fast_ok = (fast.shape == reference.shape
                                     and float(difference.mean()) <= _FAST_JPEG_MEAN_TOLERANCE
                                     and int(difference.max()) <= _FAST_JPEG_MAX_TOLERANCE)
        return self._fast_ok

    def _fast_jpeg_frames(self, check: bool = True) -> Iterator[tuple[int, float, np.ndarray]]:
        """The frames' JPEG bytes found by pydicom, read from the file one frame at a time, decoded by OpenCV."""
        pydicom = pydicom_module()
        from pydicom.encaps import generate_frames

        total = self.info.frames
        shape = (self.info.rows, self.info.columns)
        index, reason = 0, ""
        with _EndWatchingReader(io.FileIO(self.path, "rb")) as reader:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                pydicom.dcmread(reader, stop_before_pixels=True)  # leaves the file at the Pixel Data element
            # Pixel Data of undefined length: encapsulated frames follow.
            if pixel_data_length(reader, _JPEG_BASELINE) != UNDEFINED_LENGTH:
                raise ValueError("no encapsulated Pixel Data where the header ends")
            encoded = generate_frames(reader, number_of_frames=total)
            while index < total:
                try:
                    data = next(encoded)
                except StopIteration:
                    break
                except Exception as exc:  # a damaged item structure: the frames before it stand
                    reason = f"the frame could not be read ({clean_message(exc, self.path)})"
                    break
                if reader.cut_short:
                    reason = "the file ends inside this frame (it is truncated)"
                    break
                # An empty fragment is no JPEG: OpenCV asserts on an empty buffer rather than returning None.
                image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED) if data else None
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
                # Its header describes an image (check_image_header), so the pixels are missing, not absent by design.
                raise NoImageError(f"{self.info.name} holds no image: it has no Pixel Data although its header "
                                   "describes one (the file ends before its pixels, or was exported without them); "
                                   "export it again from the scanner or PACS") from None
            return None, f"the frame could not be decoded ({clean_message(exc, self.path)})"
        except Exception as exc:  # RuntimeError from every plugin, ValueError from a short frame, ...
            return None, f"the frame could not be decoded ({clean_message(exc, self.path)})"

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
        except NoImageError:
            continue  # exports put reports and DICOMDIRs beside the images
    if not images:
        what = "no DICOM files" if not candidates else "DICOM files but no image among them"
        raise CosaEdgeError(f"the DICOM series folder holds {what}; give a folder of DICOM ultrasound images or "
                            "cine loops")
    # Instance Number is the scanner's order; files without one go last, in file-name order.
    images.sort(key=lambda image: (image.info.instance_number is None, image.info.instance_number or 0,
                                   image.info.name))
    return images
