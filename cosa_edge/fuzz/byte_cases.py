"""Byte-level fuzz cases: real video, image and engine files, with their bytes changed.

The base files are genuine: OpenCV writes the videos (MJPG AVI, mp4v MP4) and images (PNG, JPEG, BMP, TIFF) from
phantom frames, and :mod:`.engine` writes a real ONNX engine. A recipe (plain data, JSON-able) names the base and
the changes: bytes flipped, cut, inserted or zeroed anywhere, and, where the format has them, the header fields
that state sizes and counts set to boundary values (a width of 0 or 65535, a frame count of 2^31), which random
flips rarely hit. Hypothesis draws recipes (:func:`recipes`) and shrinks a failing one.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..data.phantom import make_phantom
from .dicom_cases import require_hypothesis
from .engine import write_tiny_engine

SHAPE = (48, 64)
VIDEO_FRAMES = 10
VIDEOS = (".avi", ".mp4")
IMAGES = (".png", ".jpg", ".bmp", ".tif")
ENGINES = (".onnx",)

#: Size and count fields: (marker bytes, offset of the field from the marker's start, field width in bytes,
#: byte order). AVI: avih's total frames, width and height; strh's length; strf's bitmap width and height.
#: MP4: tkhd's width and height (16.16 fixed point), stsz's sample count. PNG: IHDR's width and height.
#: JPEG: SOF0's height and width. BMP: the info header's width, height and bit count.
FIELDS: dict[str, list[tuple[bytes, int, int, str]]] = {
    ".avi": [(b"avih", 24, 4, "<"), (b"avih", 40, 4, "<"), (b"avih", 44, 4, "<"), (b"strh", 40, 4, "<"),
             (b"strf", 12, 4, "<"), (b"strf", 16, 4, "<"), (b"strf", 22, 2, "<")],
    ".mp4": [(b"tkhd", 80, 4, ">"), (b"tkhd", 84, 4, ">"), (b"stsz", 12, 4, ">"), (b"stsz", 8, 4, ">"),
             (b"mdhd", 16, 4, ">")],
    ".png": [(b"IHDR", 4, 4, ">"), (b"IHDR", 8, 4, ">"), (b"IHDR", 12, 1, ">")],
    ".jpg": [(b"\xff\xc0", 5, 2, ">"), (b"\xff\xc0", 7, 2, ">"), (b"\xff\xc0", 9, 1, ">")],
    ".bmp": [(b"BM", 18, 4, "<"), (b"BM", 22, 4, "<"), (b"BM", 28, 2, "<")],
    ".tif": [(b"II*\x00", 4, 4, "<")],
    ".onnx": [],
}
FIELD_VALUES = (0, 1, 2, 3, 7, 65535, 60000, 2**31 - 1, 2**32 - 1)
BYTE_OPS = ("flip", "truncate", "insert", "zeros", "field")
#: Engine metadata (ONNX metadata_props, which the graph hash leaves out: cosa_edge/engines/artifact.py) that a
#: mutation may replace with a value of the wrong type or range, keeping the graph hash valid.
METADATA_KEYS = ("input_size", "class_names", "positive_class", "normalisation", "outputs", "precision",
                 "cosa_op", "presence", "calibration", "ood", "quantization", "graph_sha256", "architecture")
METADATA_VALUES = ('"abc"', "-1", "0", "1e9", "null", "[]", "{}", "3.5", '"fp64"', '["x"]', '{"threshold": "x"}',
                   '{"min_lesion_share": -5}', '{"temperature": 0}', "true", '"')


def recipes(kinds: tuple[str, ...]) -> Any:
    """A Hypothesis strategy of byte recipes over the base files of ``kinds`` (suffixes)."""
    st = require_hypothesis().strategies
    op = st.tuples(st.sampled_from(BYTE_OPS), st.floats(0, 1, allow_nan=False), st.integers(0, 255),
                   st.sampled_from(FIELD_VALUES), st.integers(0, 7))
    ops = st.lists(op, min_size=1, max_size=3)
    if kinds == ENGINES:  # engine files: their metadata changed as a writer would, or their bytes
        metadata = st.tuples(st.sampled_from(METADATA_KEYS), st.sampled_from(METADATA_VALUES))
        return st.fixed_dictionaries({"base": st.sampled_from(kinds),
                                      "ops": st.one_of(ops, st.just([])),
                                      "metadata": st.lists(metadata, max_size=2)})
    return st.fixed_dictionaries({"base": st.sampled_from(kinds), "ops": ops})


#: Files of a data spec's folder (cosa_edge/data/folder.py) a data-spec case may change.
DATA_SPEC_FILES = ("labels.csv", "images/phantom_00000.png", "masks/phantom_00000.png", "images/phantom_00001.png")


def data_spec_recipes() -> Any:
    """A Hypothesis strategy of changes to one file of a ``folder:`` data spec."""
    st = require_hypothesis().strategies
    op = st.tuples(st.sampled_from(BYTE_OPS), st.floats(0, 1, allow_nan=False), st.integers(0, 255),
                   st.sampled_from(FIELD_VALUES), st.integers(0, 7))
    return st.fixed_dictionaries({"base": st.just(".png"), "file": st.sampled_from(DATA_SPEC_FILES),
                                  "ops": st.lists(op, min_size=1, max_size=3)})


def write_data_spec_case(recipe: dict[str, Any], folder: Path) -> Path:
    """A ``folder:`` data spec of three phantoms with one file changed as ``recipe`` says."""
    from ..data.folder import write_folder
    from ..data.phantom import make_phantom_dataset

    write_folder(make_phantom_dataset(3, seed=0, size=SHAPE), folder)
    target = folder / recipe["file"]
    suffix = target.suffix if target.suffix in FIELDS else ".png"
    target.write_bytes(mutate(target.read_bytes(), suffix, recipe["ops"]))
    return folder


#: An OpenVINO engine's three files, and what a case may change in its JSON sidecar: the sidecar holds the
#: hashes the model and weights are checked against, so it is read before any check (engines/openvino_engine.py).
OPENVINO_FILES = ("model.xml.json", "model.xml.json", "model.xml", "model.bin")
SIDECAR_PATHS = ("", "build", "metadata", "build.xml_sha256", "build.bin_sha256", "build.openvino_version",
                 "metadata.cosa_edge.input_size", "metadata.cosa_edge.architecture")
SIDECAR_VALUES = ('"abc"', "null", "[]", "{}", "5", "true", '"2026.4.1"', '""')


def openvino_recipes() -> Any:
    """A Hypothesis strategy of changes to an OpenVINO engine's files."""
    st = require_hypothesis().strategies
    op = st.tuples(st.sampled_from(BYTE_OPS), st.floats(0, 1, allow_nan=False), st.integers(0, 255),
                   st.sampled_from(FIELD_VALUES), st.integers(0, 7))
    change = st.tuples(st.sampled_from(SIDECAR_PATHS), st.sampled_from(SIDECAR_VALUES))
    return st.fixed_dictionaries({"base": st.just(".xml"), "file": st.sampled_from(OPENVINO_FILES),
                                  "ops": st.lists(op, max_size=2), "sidecar": st.lists(change, max_size=2)})


def _sidecar_with(text: str, changes: list[Any]) -> str:
    """The sidecar with values replaced at dotted paths (the metadata's keys hold dots of their own)."""
    import json

    document: Any = json.loads(text)
    for path, value in changes:
        new = json.loads(value)
        if not path:
            document = new
            continue
        head, _, rest = path.partition(".")
        if not isinstance(document, dict):
            continue
        if not rest:
            document[head] = new
        elif isinstance(document.get(head), dict):
            document[head][rest] = new
    return json.dumps(document)


def write_openvino_case(recipe: dict[str, Any], folder: Path, scratch: Path, onnx_engine: Path) -> Path:
    """An OpenVINO engine (built once from the tiny ONNX engine) in ``folder``, one of its files changed."""
    import shutil

    built = Path(scratch) / "openvino" / "model.xml"
    if not built.exists():
        from ..contract import ModelMetadata
        from ..engines.artifact import read_verified_onnx, scan_onnx
        from ..engines.openvino_engine import build_openvino

        metadata = ModelMetadata.from_props(scan_onnx(read_verified_onnx(onnx_engine))[1], onnx_engine.name)
        build_openvino(onnx_engine, built, metadata, "fp32")
    for name in ("model.xml", "model.bin", "model.xml.json"):
        shutil.copy(built.parent / name, folder / name)
    target = folder / recipe["file"]
    if recipe["file"].endswith(".json") and recipe.get("sidecar"):
        target.write_text(_sidecar_with(target.read_text(), recipe["sidecar"]))
    target.write_bytes(mutate(target.read_bytes(), ".xml", recipe["ops"]))
    return folder / "model.xml"


def _phantoms(count: int) -> list[np.ndarray]:
    return [cv2.cvtColor(make_phantom(seed, size=SHAPE).image, cv2.COLOR_GRAY2BGR) for seed in range(count)]


def write_base(suffix: str, path: Path) -> Path:
    """A genuine file of the kind ``suffix`` names."""
    path = Path(path)
    if suffix in VIDEOS:
        fourcc = "MJPG" if suffix == ".avi" else "mp4v"
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 25.0, SHAPE[::-1])
        if not writer.isOpened():
            raise RuntimeError(f"OpenCV cannot write {fourcc} here")
        for frame in _phantoms(VIDEO_FRAMES):
            writer.write(frame)
        writer.release()
    elif suffix in IMAGES:
        if not cv2.imwrite(str(path), _phantoms(1)[0]):
            raise RuntimeError(f"OpenCV cannot write {suffix} here")
    elif suffix == ".onnx":
        write_tiny_engine(path)
    else:
        raise ValueError(f"no base file for {suffix}")
    return path


def _field(data: bytes, suffix: str, choice: int, value: int) -> bytes:
    fields = FIELDS.get(suffix, [])
    if not fields:
        return data
    marker, offset, width, order = fields[choice % len(fields)]
    start = data.find(marker)
    if start < 0 or start + offset + width > len(data):
        return data
    fmt = order + {1: "B", 2: "H", 4: "I"}[width]
    value &= (1 << (8 * width)) - 1
    if suffix == ".mp4" and offset in (80, 84):
        value = (value & 0xFFFF) << 16  # 16.16 fixed point
    position = start + offset
    return data[:position] + struct.pack(fmt, value) + data[position + width:]


def mutate(data: bytes, suffix: str, ops: list[Any]) -> bytes:
    for op, where, byte, value, choice in ops:
        position = min(int(len(data) * where), max(len(data) - 1, 0))
        if op == "flip" and data:
            data = data[:position] + bytes([data[position] ^ (byte or 1)]) + data[position + 1:]
        elif op == "truncate":
            data = data[:position]
        elif op == "insert":
            data = data[:position] + bytes([byte]) * (byte % 13 + 1) + data[position:]
        elif op == "zeros":
            data = data[:position] + b"\x00" * (byte * 8) + data[position + byte * 8:]
        elif op == "field":
            data = _field(data, suffix, choice, value)
    return data


def _with_metadata(data: bytes, changes: list[Any]) -> bytes:
    """The engine with metadata values replaced; the graph (and so its recorded hash) stays as it was."""
    from .._optional import require

    onnx = require("onnx")
    model = onnx.load_from_string(data)
    for key, value in changes:
        for entry in model.metadata_props:
            if entry.key == f"cosa_edge.{key}":
                entry.value = value
    return model.SerializeToString()


_BASE_CACHE: dict[str, bytes] = {}


def write_byte_case(recipe: dict[str, Any], path: Path, scratch: Path) -> Path:
    """Write the file a recipe describes to ``path``; base files are made once in ``scratch``."""
    suffix = recipe["base"]
    if suffix not in _BASE_CACHE:
        _BASE_CACHE[suffix] = write_base(suffix, Path(scratch) / f"base{suffix}").read_bytes()
    data = _BASE_CACHE[suffix]
    if recipe.get("metadata"):
        data = _with_metadata(data, recipe["metadata"])
    Path(path).write_bytes(mutate(data, suffix, recipe["ops"]))
    return Path(path)
