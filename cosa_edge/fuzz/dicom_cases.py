"""DICOM fuzz cases: scanner-like files mutated in their structure and in their bytes.

A case is a *recipe*: plain data (JSON-able, so that a failing case is recorded and rebuilt exactly) that names a
base file and the mutations applied to it. Hypothesis draws recipes (:func:`recipes`) and shrinks a failing one to
its smallest form; :func:`write_dicom_case` turns a recipe into a file. Mutations, each applied where it applies:

- header values: Rows, Columns, Number of Frames, bit depths, photometric interpretation, timing, window...,
  either valid values that contradict the data or raw bytes that no valid value has;
- elements deleted, the Sequence of Ultrasound Regions emptied, multiplied or given extreme values;
- the transfer syntax changed in the file meta information without re-encoding the data (a lying header);
- encapsulated fragments dropped, duplicated, emptied, cut, split, flipped, and a wrong Basic Offset Table;
- the written file truncated, flipped or padded with junk at any place.

Bases are small (48 x 64 pixels) so that a case costs milliseconds; sizes never matter to the bugs sought here,
which are about a header and data that disagree. Patient attributes: none (these files are made up).
"""

from __future__ import annotations

import io
import struct
from pathlib import Path
from typing import Any

import numpy as np

from .._optional import require
from ..errors import CosaEdgeError
from .dicom_bases import BASE_FRAMES, BASES, LONG_FRAMES, cached_base

#: Header elements a mutation may set, with their VR and values that matter: boundaries, contradictions of the
#: data, and values that overflow what a reader might allocate.
HEADER_VALUES: dict[str, tuple[str, list[Any]]] = {
    "Rows": ("US", [0, 1, 2, 47, 49, 96, 4096, 60000, 65535]),
    "Columns": ("US", [0, 1, 2, 63, 65, 128, 4096, 60000, 65535]),
    "NumberOfFrames": ("IS", ["0", "1", "2", "7", "9", "39", "41", "100000", "2147483647", "-1", "abc", "1.5", ""]),
    "BitsAllocated": ("US", [0, 1, 8, 12, 16, 32, 64]),
    "BitsStored": ("US", [0, 1, 7, 8, 12, 16, 33]),
    "HighBit": ("US", [0, 7, 15, 31, 255]),
    "SamplesPerPixel": ("US", [0, 1, 2, 3, 4]),
    "PhotometricInterpretation": ("CS", ["MONOCHROME1", "MONOCHROME2", "RGB", "YBR_FULL", "YBR_FULL_422",
                                         "PALETTE COLOR", "YBR_ICT", "YBR_RCT", "HSV", "", "XYZ"]),
    "PlanarConfiguration": ("US", [0, 1, 2]),
    "PixelRepresentation": ("US", [0, 1, 2]),
    "FrameTime": ("DS", ["0", "-33.3", "nan", "inf", "1e308", "1e-300", "abc", "33.3"]),
    "FrameTimeVector": ("DS", [["0", "33"], ["0"] * BASE_FRAMES, ["-1"] * BASE_FRAMES, ["nan"] * (BASE_FRAMES - 1),
                               ["1e308"] * BASE_FRAMES]),
    "CineRate": ("IS", ["0", "-5", "30", "100000", "abc"]),
    "WindowCenter": ("DS", ["0", "-1e30", "nan", "1e30"]),
    "WindowWidth": ("DS", ["0", "1", "2", "-1", "nan", "1e-30"]),
    "RescaleSlope": ("DS", ["0", "-1", "nan", "1e30"]),
    "RescaleIntercept": ("DS", ["nan", "-1e30"]),
    "InstanceNumber": ("IS", ["-2147483648", "abc", ""]),
    "PixelSpacing": ("DS", [["0", "0"], ["nan", "1"], ["-1", "-1"], ["0.1"], ["1e308", "1e308"]]),
}
#: Elements a mutation may delete ("file_meta.X" is in the file meta information).
DELETABLE = ("Rows", "Columns", "NumberOfFrames", "BitsAllocated", "BitsStored", "SamplesPerPixel",
             "PhotometricInterpretation", "PixelData", "SOPClassUID", "FrameTime", "PixelRepresentation",
             "PlanarConfiguration", "SequenceOfUltrasoundRegions", "file_meta.TransferSyntaxUID")
#: Transfer syntaxes a lying file meta may state; the data stays as it was written.
SYNTAXES = ("1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99",
            "1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70",
            "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81", "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91",
            "1.2.840.10008.1.2.5", "1.2.840.10008.1.2.4.201", "1.2.826.0.1.3680043.99.1", "garbage")
#: Region item fields and values a mutation may give the first region.
REGION_VALUES: dict[str, tuple[str, list[Any]]] = {
    "RegionLocationMinX0": ("UL", [0, 63, 64, 2**31, 2**32 - 1]),
    "RegionLocationMinY0": ("UL", [0, 47, 48, 2**32 - 1]),
    "RegionLocationMaxX1": ("UL", [0, 1, 63, 64, 2**32 - 1]),
    "RegionLocationMaxY1": ("UL", [0, 1, 47, 48, 2**32 - 1]),
    "RegionSpatialFormat": ("US", [0, 1, 3, 65535]),
    "RegionDataType": ("US", [0, 1, 3, 65535]),
    "PhysicalUnitsXDirection": ("US", [0, 3, 4, 65535]),
    "PhysicalDeltaX": ("FD", [0.0, -0.01, float("nan"), float("inf"), 1e308, 5e-324]),
    "PhysicalDeltaY": ("FD", [0.0, -0.01, float("nan"), float("inf"), 1e308, 5e-324]),
}
FRAGMENT_OPS = ("drop", "duplicate", "empty", "truncate", "flip", "split", "garbage", "swap")
OFFSET_TABLES = ("none", "right", "wrong", "short")
FILE_OPS = ("truncate", "flip", "insert", "zeros")

_ITEM, _SEQUENCE_END = b"\xfe\xff\x00\xe0", b"\xfe\xff\xdd\xe0"


# --------------------------------------------------------------------------------------------------
# Recipes, drawn by Hypothesis


def recipes() -> Any:
    """A Hypothesis strategy of DICOM recipes (dicts of plain data)."""
    st = require_hypothesis().strategies
    header = st.sampled_from(sorted(HEADER_VALUES)).flatmap(
        lambda keyword: st.one_of(
            st.tuples(st.just(keyword), st.sampled_from(HEADER_VALUES[keyword][1]).map(_jsonable)),
            # Bytes no valid value has: a reader must not trust a value's length or content.
            st.tuples(st.just(keyword), st.builds(lambda data: {"raw": data.hex()}, st.binary(max_size=6)))))
    region = st.sampled_from(sorted(REGION_VALUES)).flatmap(
        lambda keyword: st.tuples(st.just(keyword), st.sampled_from(REGION_VALUES[keyword][1]).map(_jsonable)))
    fragment = st.tuples(st.sampled_from(FRAGMENT_OPS), st.integers(0, LONG_FRAMES + 1),
                         st.floats(0, 1, allow_nan=False), st.integers(1, 255))
    file_op = st.tuples(st.sampled_from(FILE_OPS), st.floats(0, 1, allow_nan=False), st.integers(1, 255))
    return st.fixed_dictionaries({
        "base": st.sampled_from(BASES),
        "header": st.lists(header, max_size=3),
        "delete": st.lists(st.sampled_from(DELETABLE), max_size=1),
        "regions": st.one_of(st.just([]), st.lists(region, max_size=2), st.sampled_from([["empty"], ["many"]])),
        "syntax": st.one_of(st.none(), st.none(), st.sampled_from(SYNTAXES)),
        "fragments": st.lists(fragment, max_size=3),
        "offset_table": st.sampled_from(OFFSET_TABLES),
        "file": st.lists(file_op, max_size=2),
    })


def require_hypothesis() -> Any:
    """Hypothesis, imported when strategies are built: it is a development dependency, not a runtime one."""
    try:
        import hypothesis
    except ImportError:
        raise CosaEdgeError("the fuzzing harness needs Hypothesis: pip install -e '.[dev]'") from None
    return hypothesis


def _jsonable(value: Any) -> Any:
    """Floats that JSON cannot hold (nan, inf) travel as strings."""
    if isinstance(value, float) and not np.isfinite(value):
        return {"float": repr(value)}
    return value


def _value(value: Any) -> Any:
    if isinstance(value, dict) and "float" in value:
        return float(value["float"])
    return value


# --------------------------------------------------------------------------------------------------
# Mutations


def _set(ds: Any, keyword: str, vr: str, value: Any) -> None:
    """Set an element to ``value``; values pydicom will not hold (IS "abc", US of 3 bytes) go in as raw bytes
    under VR UN, which readers convert by the tag's dictionary VR, as they do for a scanner's private encoding."""
    pydicom = require("pydicom")
    from pydicom.dataelem import DataElement

    tag = pydicom.datadict.tag_for_keyword(keyword)
    if isinstance(value, dict) and "raw" in value:
        raw = bytes.fromhex(value["raw"])
    else:
        value = [_value(v) for v in value] if isinstance(value, list) else _value(value)
        try:
            ds[tag] = DataElement(tag, vr, value)
            _encode(ds, tag)
            return
        except Exception:  # not a valid value of its VR: its text goes in as raw bytes
            text = "\\".join(map(str, value)) if isinstance(value, list) else str(value)
            raw = text.encode("ascii", "replace")
    if len(raw) % 2:
        raw += b" " if vr in ("IS", "DS", "CS") else b"\x00"
    # Made as OB (pydicom would convert a UN value by the tag's dictionary VR at once), then marked UN.
    element = DataElement(tag, "OB", raw)
    element.VR = "UN"
    ds[tag] = element


def _encode(ds: Any, tag: int) -> None:
    """Raise now if pydicom cannot write ``ds[tag]`` (a value out of its VR's range), not when saving."""
    pydicom = require("pydicom")
    buffer = pydicom.filebase.DicomBytesIO()
    buffer.is_little_endian, buffer.is_implicit_VR = True, False
    pydicom.filewriter.write_data_element(buffer, ds[tag])


def _apply_header(ds: Any, recipe: dict[str, Any]) -> None:
    for keyword, value in recipe.get("header", []):
        _set(ds, keyword, HEADER_VALUES[keyword][0], value)
    for keyword in recipe.get("delete", []):
        if not keyword.startswith("file_meta.") and keyword in ds:  # the meta's are taken out after writing
            delattr(ds, keyword)
    sequence = ds.get("SequenceOfUltrasoundRegions")
    for change in recipe.get("regions", []):
        if sequence is None:
            break
        if change == "empty":
            ds.SequenceOfUltrasoundRegions = []
        elif change == "many":
            sequence.extend([sequence[0]] * 49 if len(sequence) else [])
        elif len(sequence):
            keyword, value = change
            _set(sequence[0], keyword, REGION_VALUES[keyword][0], value)


def _flip(data: bytes, cut: int, byte: int) -> bytes:
    if not data:
        return data
    position = min(cut, len(data) - 1)
    return data[:position] + bytes([data[position] ^ byte]) + data[position + 1:]


#: What each fragment operation puts in place of fragment i: (fragments, i, cut position, byte) -> new fragments.
_FRAGMENT_OPS: dict[str, Any] = {
    "drop": lambda f, i, cut, byte: f[:i] + f[i + 1:],
    "duplicate": lambda f, i, cut, byte: f[:i] + [f[i]] + f[i:],
    "empty": lambda f, i, cut, byte: f[:i] + [b""] + f[i + 1:],
    "truncate": lambda f, i, cut, byte: f[:i] + [f[i][:cut]] + f[i + 1:],
    "flip": lambda f, i, cut, byte: f[:i] + [_flip(f[i], cut, byte)] + f[i + 1:],
    "split": lambda f, i, cut, byte: f[:i] + [f[i][:cut], f[i][cut:]] + f[i + 1:],
    "garbage": lambda f, i, cut, byte: f[:i] + [bytes((byte * (k + 1)) % 256 for k in range(max(cut, 2)))] + f[i + 1:],
    "swap": lambda f, i, cut, byte: (f[:i] + [f[i + 1], f[i]] + f[i + 2:] if i + 1 < len(f)
                                     else [f[-1], *f[1:-1], f[0]] if len(f) > 1 else f),
}


def _mutate_fragments(fragments: list[bytes], ops: list[Any]) -> list[bytes]:
    fragments = list(fragments)
    for op, index, where, byte in ops:
        if not fragments:
            break
        i = index % len(fragments)
        fragments = _FRAGMENT_OPS[op](fragments, i, int(len(fragments[i]) * where), byte)
    return fragments


def encapsulate_fragments(fragments: list[bytes], offset_table: str) -> bytes:
    """Encapsulated Pixel Data (PS3.5 A.4) built here, so that its Basic Offset Table can lie."""
    items = [fragment + (b"\x00" if len(fragment) % 2 else b"") for fragment in fragments]
    offsets, position = [], 0
    for item in items:
        offsets.append(position)
        position += 8 + len(item)
    if offset_table == "right":
        table = struct.pack(f"<{len(offsets)}I", *offsets)
    elif offset_table == "wrong":
        table = struct.pack(f"<{len(offsets)}I", *[offset * 3 + 2 for offset in offsets])
    elif offset_table == "short":
        table = struct.pack(f"<{len(offsets[:2])}I", *offsets[:2])
    else:
        table = b""
    out = [_ITEM + struct.pack("<I", len(table)) + table]
    out += [_ITEM + struct.pack("<I", len(item)) + item for item in items]
    return b"".join(out)


def _lie_about_syntax(data: bytes, syntax: str | None) -> bytes:
    """The file with another transfer syntax (None: none) in its file meta; the data set stays as written."""
    pydicom = require("pydicom")
    from pydicom.filewriter import write_file_meta_info

    meta = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True).file_meta
    group_length = struct.unpack("<I", data[140:144])[0]  # (0002,0000) UL right after "DICM"
    body = data[144 + group_length:]
    if syntax is None:
        del meta.TransferSyntaxUID
    else:
        meta.TransferSyntaxUID = syntax
    buffer = pydicom.filebase.DicomBytesIO()
    write_file_meta_info(buffer, meta, enforce_standard=False)
    return data[:132] + buffer.getvalue() + body


def _mutate_file(data: bytes, ops: list[Any]) -> bytes:
    for op, where, byte in ops:
        position = min(int(len(data) * where), max(len(data) - 1, 0))
        if op == "truncate":
            data = data[:position]
        elif op == "flip" and data:
            data = data[:position] + bytes([data[position] ^ byte]) + data[position + 1:]
        elif op == "insert":
            data = data[:position] + bytes([byte]) * (byte % 7 + 1) + data[position:]
        elif op == "zeros":
            data = data[:position] + b"\x00" * (byte * 4) + data[position + byte * 4:]
    return data


#: Header elements whose change may make frames undecodable (then a stop with a note is right, not a full read).
_PIXEL_DESCRIPTION = {"Rows", "Columns", "BitsAllocated", "BitsStored", "HighBit", "SamplesPerPixel",
                      "PhotometricInterpretation", "PlanarConfiguration", "PixelRepresentation"}


def frames_in_data(recipe: dict[str, Any]) -> int | None:
    """How many whole frames the written file's data holds, where the recipe leaves that knowable: encapsulated
    frames only reordered, dropped or duplicated, and nothing else that could stop their decoding. Whatever the
    header then says, every one of them must be processed, or a note must say why not."""
    if not recipe["base"].startswith("jpeg") or recipe.get("file") or recipe.get("syntax"):
        return None
    if any(op not in ("drop", "duplicate", "swap") for op, *_ in recipe.get("fragments", [])):
        return None
    if {keyword for keyword, _ in recipe.get("header", [])} & _PIXEL_DESCRIPTION:
        return None
    essential = _PIXEL_DESCRIPTION | {"PixelData", "SOPClassUID", "file_meta.TransferSyntaxUID"}
    if set(recipe.get("delete", [])) & essential:
        return None
    count = LONG_FRAMES if recipe["base"] == "jpeg_cine_long" else BASE_FRAMES
    for op, *_ in recipe.get("fragments", []):
        if count == 0:
            break
        count += {"drop": -1, "duplicate": 1}.get(op, 0)
    return count


def write_dicom_case(recipe: dict[str, Any], path: Path) -> Path:
    """Write the file a recipe describes to ``path``."""
    ds, fragments = cached_base(recipe["base"])
    _apply_header(ds, recipe)
    if fragments is not None and "PixelData" not in recipe.get("delete", []):
        from pydicom.dataelem import DataElement

        data = encapsulate_fragments(_mutate_fragments(fragments, recipe.get("fragments", [])),
                            recipe.get("offset_table", "none"))
        ds["PixelData"] = DataElement(0x7FE00010, "OB", data, is_undefined_length=True)
    buffer = io.BytesIO()
    # Written in the syntax the base data is in; a lying or missing syntax goes into the meta afterwards.
    ds.save_as(buffer, enforce_file_format=True)
    data = buffer.getvalue()
    if "file_meta.TransferSyntaxUID" in recipe.get("delete", []):
        data = _lie_about_syntax(data, None)
    elif recipe.get("syntax"):
        data = _lie_about_syntax(data, recipe["syntax"])
    data = _mutate_file(data, recipe.get("file", []))
    Path(path).write_bytes(data)
    return Path(path)
