"""DICOM detection and the header: is it DICOM, is it an image, and its values read without surprises.

pydicom (the ``dicom`` extra) is imported lazily, so that cosa-edge imports without it. Values in real files are
often missing, empty or not numbers: the ``tag_*`` readers return None for those instead of raising, and the
caller decides what the absence means. Messages name files by their file name only, never their folder (exports
name folders after the patient).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from .._optional import require
from ..errors import CosaEdgeError

if TYPE_CHECKING:  # only for type hints: pydicom stays an optional, lazily imported dependency
    from pydicom.dataset import Dataset

#: DICOM Part 10: a 128-byte preamble, then these four bytes.
_MAGIC = b"DICM"
_MAGIC_OFFSET = 128


class NoImageError(CosaEdgeError):
    """The file is DICOM but holds no image (a report, a DICOMDIR, a presentation state)."""


def is_dicom(path: Path) -> bool:
    """True when ``path`` is a DICOM Part 10 file, judged by content (the suffix means nothing in DICOM)."""
    try:
        with Path(path).open("rb") as handle:
            handle.seek(_MAGIC_OFFSET)
            return handle.read(len(_MAGIC)) == _MAGIC
    except OSError:  # missing, a folder, unreadable: not a DICOM file we can use
        return False


def pydicom_module() -> ModuleType:
    return require("pydicom")


def pixels_module() -> ModuleType:
    """``pydicom.pixels``, looked up at call time (tests replace its decoder lookup)."""
    pydicom_module()
    return require("pydicom.pixels")


def clean_message(exc: BaseException, path: Path) -> str:
    """The first line of a library's message, without the file's folder (it may name the patient)."""
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0].rstrip(" :")
    absolute = path.absolute()
    for full in (str(absolute), str(path)):
        text = text.replace(full, path.name)
    for folder in (str(absolute.parent), str(path.parent)):
        if folder not in ("", ".", os.sep):  # "." would take every full stop with it
            text = text.replace(folder, "<folder>")
    return text[:200]


def read_header(path: Path) -> Dataset:
    """The dataset without its pixel data; a corrupt or non-DICOM file is a CosaEdgeError."""
    pydicom = pydicom_module()
    try:
        with warnings.catch_warnings():
            # pydicom warns about odd values with the full path; the header is judged below instead.
            warnings.simplefilter("ignore")
            # stop_before_pixels: the header alone, so opening a long cine costs nothing, and a file cut
            # inside its pixel data still opens (pydicom drops every element when its value hits EOF).
            return pydicom.dcmread(path, stop_before_pixels=True)
    except Exception as exc:  # InvalidDicomError, EOFError, struct.error, ValueError...: all mean "corrupt"
        raise CosaEdgeError(
            f"{path.name} is not a readable DICOM file ({clean_message(exc, path)}); check that it is a complete "
            "DICOM export from the scanner or PACS"
        ) from None


def check_image_header(dataset: Dataset, name: str) -> None:
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
    kind = uid_name(sop_class, "a private kind of DICOM object")
    if "Image" in kind:  # an image object without its image description: the header broke off
        raise CosaEdgeError(f"{name} has a corrupt or truncated DICOM header ({kind} without Rows and Columns); "
                            "export it again from the scanner or PACS")
    raise NoImageError(f"{name} holds no image (its kind is {kind}); give a DICOM image or cine loop")


# --------------------------------------------------------------------------------------------------
# Values from the header


def tag_values(dataset: Any, keyword: str) -> list[Any]:
    """An element's values as a list (DICOM multi-values and single values alike); [] if absent or empty."""
    value = dataset.get(keyword) if dataset is not None else None
    if value is None or value == "":
        return []
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        return [value]
    return list(value)


def tag_number(dataset: Any, keyword: str) -> float | None:
    """The element's first value as a float, or None when absent or not a number (bad values are common)."""
    values = tag_values(dataset, keyword)
    try:
        return float(values[0]) if values else None
    except (TypeError, ValueError):
        return None


def tag_integer(dataset: Any, keyword: str) -> int | None:
    number = tag_number(dataset, keyword)
    return int(number) if number is not None and np.isfinite(number) else None


def tag_numbers(dataset: Any, keyword: str) -> list[float] | None:
    values = tag_values(dataset, keyword)
    try:
        return [float(value) for value in values] if values else None
    except (TypeError, ValueError):
        return None


def uid_name(uid: Any, unknown: str) -> str:
    """A standard UID's name, or ``unknown`` for a private or unknown one (UIDs are never spelled out)."""
    name = getattr(uid, "name", "")
    return name if name and name != str(uid) else unknown
