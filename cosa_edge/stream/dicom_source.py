"""The source of a DICOM result, read for highdicom, and the privacy and saving around every result written.

The results carry the patient's identity by design (a PACS files them beside their image), but no log line,
warning or error message may show it: :func:`withholding` rewrites any that would. The writers are in
dicom_results.py.
"""

from __future__ import annotations

import contextlib
import logging
import re
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._optional import require
from ..errors import CosaEdgeError
from ..fileio import atomic_open

if TYPE_CHECKING:  # only for annotations: pydicom is imported where it is used
    from pydicom.dataset import Dataset

#: Type 2 attributes (present, possibly empty) that highdicom reads from the source with plain attribute
#: access; scanners and anonymisers often leave them out altogether, which would fail with an AttributeError.
_TYPE2_SOURCE_ATTRIBUTES = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "AccessionNumber",
                            "StudyID", "StudyDate", "StudyTime", "ReferringPhysicianName")
#: Type 1 attributes without which a result cannot reference the source or be filed with it.
_REQUIRED_SOURCE_ATTRIBUTES = ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID",
                               "Modality", "Rows", "Columns")
#: Attributes whose values must never appear in a log line, warning or error message.
_IDENTIFYING_ATTRIBUTES = ("PatientName", "PatientID", "PatientBirthDate", "OtherPatientIDs", "AccessionNumber",
                           "StudyID", "StudyDate", "StudyTime", "SeriesDate", "SeriesTime", "ContentDate",
                           "ContentTime", "AcquisitionDate", "AcquisitionDateTime", "InstitutionName",
                           "InstitutionAddress", "ReferringPhysicianName", "OperatorsName", "StationName",
                           "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "FrameOfReferenceUID")
_WITHHELD = "<withheld>"
#: Patient Sex values highdicom accepts (it raises on anything else, e.g. a scanner's "U").
_PATIENT_SEX_VALUES = ("M", "F", "O", "")


def read_source(source: Path, secrets: list[str]) -> Dataset:
    """The source's attributes without its pixel data (highdicom needs only them), ready for highdicom.

    Its identifying values are added to ``secrets`` as soon as it is read, for :func:`withholding`.
    """
    pydicom = require("pydicom")
    source = Path(source)
    if not source.is_file():
        raise CosaEdgeError(f"the DICOM source {source.name} does not exist; pass the file the results were "
                            "computed on")
    try:
        dataset = pydicom.dcmread(source, stop_before_pixels=True)
    except pydicom.errors.InvalidDicomError:
        raise CosaEdgeError(f"{source.name} is not a DICOM file; DICOM results need the DICOM source they were "
                            "computed on") from None
    except (OSError, ValueError, EOFError) as exc:
        raise CosaEdgeError(f"{source.name} could not be read as DICOM ({type(exc).__name__}); check that the file "
                            "is whole") from None
    secrets.extend(_identifying_values(dataset))
    secrets.sort(key=len, reverse=True)  # the longest first, so that a name goes before its parts
    missing = [keyword for keyword in _REQUIRED_SOURCE_ATTRIBUTES if not dataset.get(keyword)]
    if missing:
        raise CosaEdgeError(f"{source.name} has no {', '.join(missing)}, so a result cannot reference it or be "
                            "filed with it; use the image as the archive or scanner exported it")
    if dataset.Modality in ("SEG", "SR", "KO", "PR", "DOC"):
        raise CosaEdgeError(f"{source.name} is a {dataset.Modality} object, not an image; pass the ultrasound image")
    _complete_type2(dataset)
    return dataset


def _complete_type2(dataset: Dataset) -> None:
    """Add absent Type 2 attributes as empty, which the standard allows, so that highdicom can copy them."""
    for keyword in _TYPE2_SOURCE_ATTRIBUTES:
        if keyword not in dataset:
            setattr(dataset, keyword, None)
    # highdicom accepts only M, F, O or empty: another value (a scanner's "U") becomes empty ("unknown").
    if str(dataset.PatientSex or "").upper() not in _PATIENT_SEX_VALUES:
        dataset.PatientSex = None


def number_of_frames(dataset: Dataset) -> int:
    """Number of Frames, 1 for a single-frame image (which has no such attribute)."""
    try:
        return max(1, int(dataset.get("NumberOfFrames") or 1))
    except (TypeError, ValueError):
        raise CosaEdgeError("the source's Number of Frames is not a number; export the image again") from None


def checked_version(software_version: str) -> str:
    """``software_version`` checked: highdicom needs a non-empty string and LO allows no backslash."""
    version = str(software_version).strip()
    if not version or "\\" in version or len(version) > 64:
        raise CosaEdgeError(f"software version {software_version!r} is not a short text (1 to 64 characters, no "
                            "backslash); pass cosa_edge.__version__ or the model's version")
    return version


def _identifying_values(dataset: Dataset) -> list[str]:
    """The source's identifying values (and a name's parts) that no message may show, longest first."""
    from pydicom.multival import MultiValue

    values: set[str] = set()
    for keyword in _IDENTIFYING_ATTRIBUTES:
        value = dataset.get(keyword)
        if value is None or value == "":
            continue
        for text in (value if isinstance(value, (list, tuple, MultiValue)) else [value]):
            text = str(text).strip()
            values.add(text)
            # Person names and multi-part names may be quoted piecewise ("Doe Jane" for "Doe^Jane").
            values.update(part for part in re.split(r"[\^=\s]+", text) if len(part) >= 3)
    return sorted((v for v in values if len(v) >= 2), key=len, reverse=True)


def _scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with each of ``secrets`` replaced by <withheld>."""
    for secret in secrets:
        text = re.sub(re.escape(secret), _WITHHELD, text, flags=re.IGNORECASE)
    return text


class _ScrubFilter(logging.Filter):
    """Rewrites a log record so that it shows none of the source's identifying values."""

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self.secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        scrubbed = _scrub(message, self.secrets)
        if scrubbed != message:
            record.msg, record.args = scrubbed, ()
        return True


@contextlib.contextmanager
def withholding() -> Iterator[list[str]]:
    """Keep the source's identifying values out of pydicom's and highdicom's log records, warnings and errors.

    Yields the list of values to withhold, which the caller fills once it has read the source. A logger's
    filters act only on records made at that logger, so the filter goes on every pydicom and highdicom logger
    there is. Warnings are caught and re-issued scrubbed, and a CosaEdgeError raised inside is scrubbed too.
    Both are process-wide settings, restored on exit; writing a result takes well under a second.
    """
    secrets: list[str] = []
    scrub_filter = _ScrubFilter(secrets)
    loggers = [logging.getLogger(name) for name in list(logging.root.manager.loggerDict)
               if name.split(".")[0] in ("pydicom", "highdicom")]
    loggers += [logging.getLogger("pydicom"), logging.getLogger("highdicom")]
    for logger in loggers:
        logger.addFilter(scrub_filter)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                yield secrets
            except CosaEdgeError as exc:
                raise CosaEdgeError(_scrub(str(exc), secrets)) from None
        for warning in caught:
            warnings.warn_explicit(_scrub(str(warning.message), secrets), warning.category,
                                   warning.filename, warning.lineno)
    finally:
        for logger in loggers:
            logger.removeFilter(scrub_filter)


def build_with_highdicom(make: Any, what: str) -> Any:
    """Call highdicom's constructor ``make``; its refusals of the source's values become a CosaEdgeError.

    Their messages may quote the source's values, so :func:`withholding` scrubs the message, and the
    original is not chained (a traceback would print it).
    """
    try:
        return make()
    except (ValueError, TypeError, AttributeError) as exc:
        raise CosaEdgeError(f"highdicom could not build the {what} from this source ({type(exc).__name__}: {exc}); "
                            "check the source's DICOM attributes") from None


def save_dataset(dataset: Any, out: Path) -> Path:
    """Write ``dataset`` as a DICOM Part 10 file at ``out`` atomically; return ``out``."""
    out = Path(out)
    with atomic_open(out) as handle:
        dataset.save_as(handle, enforce_file_format=True)
    return out
