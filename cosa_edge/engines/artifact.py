"""Artifact integrity: every model file cosa-edge writes carries a hash that its loader checks.

ONNX models (exports, FP16 copies, ONNX Runtime engines): ``graph_sha256`` in the
metadata is the SHA-256 of the serialized ``ModelProto`` with its ``metadata_props``
left out (the hash is stored there, and the metadata is not what runs). It covers
the graph, its initializers, opsets and functions: any changed weight or node
changes it.

It is computed on the file's bytes, not on a re-serialized model: a loader walks the
top-level protobuf fields (a dozen records; the graph is one of them), skips field 14
(``metadata_props``) and hashes the other records' bytes in file order. The writer
serializes the model once without metadata (those bytes are exactly what a loader
will hash), then appends the metadata records: protobuf readers accept fields in
any order. A model re-saved by ``onnx.save`` unchanged hashes the same, because
protobuf writes fields in number order and the metadata sits outside the hashed
bytes either way. No onnx, torch or runtime is needed to check a file; hashing a
45 MB model takes a few tens of milliseconds. Loaders hand the runtime the very bytes
they checked. (ONNX external data, for models over 2 GB, would escape the hash; cosa-edge
writes none: its largest model, the paper preset, is a few hundred MB.)

TensorRT plans are opaque: their sidecar records the SHA-256 of the plan file
(``build.plan_sha256``). PyTorch checkpoints record the hash of their state dict.

A file written before these hashes existed loads with an
:class:`UnverifiedArtifactWarning` rather than an error: such files sit in users'
folders, nothing about them is known to be wrong, and the JSONL header of
``cosa-edge infer`` records that the engine ran unverified. A mismatch is refused.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._optional import require
from ..contract import PREFIX, ModelMetadata
from ..errors import CosaEdgeError, CosaEdgeWarning
from ..fileio import atomic_open

#: ``ModelProto.metadata_props`` in onnx.proto: the one top-level field the graph hash leaves out.
METADATA_PROPS_FIELD = 14
GRAPH_HASH_KEY = PREFIX + "graph_sha256"
_SHOWN = 16  # hex digits of a hash shown in messages: enough to tell two apart


class UnverifiedArtifactWarning(CosaEdgeWarning):
    """A model file without a recorded hash (written before cosa-edge hashed them) was loaded unchecked."""


@dataclass(frozen=True)
class Integrity:
    """The hash of what a loader loaded, and whether it matched one recorded when the file was written."""

    sha256: str
    verified: bool  # False: nothing was recorded to compare with (an older file)


def _varint(data: memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise ValueError("the file ends inside a field header")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError(f"malformed varint at byte {pos}")


def _fields(data: memoryview) -> list[tuple[int, int, int, int]]:
    """The top-level protobuf records: (field number, start, payload start, end) each; ValueError if malformed."""
    records, pos = [], 0
    while pos < len(data):
        start = pos
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        payload = pos
        if number == 0:
            raise ValueError(f"field number 0 at byte {start}")
        if wire == 0:
            _, pos = _varint(data, pos)
        elif wire == 1:
            pos += 8
        elif wire == 2:
            length, payload = _varint(data, pos)
            pos = payload + length
        elif wire == 5:
            pos += 4
        else:  # 3 and 4 (groups) are not used by onnx.proto; 6 and 7 do not exist
            raise ValueError(f"wire type {wire} at byte {start}")
        if pos > len(data):
            raise ValueError("the file ends inside a field")
        records.append((number, start, payload, pos))
    return records


def _string_entry(data: memoryview) -> tuple[str, str]:
    """A ``StringStringEntryProto`` (key = 1, value = 2)."""
    values = {1: "", 2: ""}
    for number, _, payload, end in _fields(data):
        if number in values:
            values[number] = bytes(data[payload:end]).decode("utf-8")
    return values[1], values[2]


def scan_onnx(data: bytes | memoryview) -> tuple[str, dict[str, str]]:
    """The graph hash of a serialized ONNX model and its metadata_props; ValueError if it is not protobuf."""
    view = memoryview(data)
    digest = hashlib.sha256()
    props: dict[str, str] = {}
    for number, start, payload, end in _fields(view):
        if number == METADATA_PROPS_FIELD:
            key, value = _string_entry(view[payload:end])
            props[key] = value
        else:
            digest.update(view[start:end])
    return digest.hexdigest(), props


def check_sha256(actual: str, recorded: Any, path: Path, changed_since: str, remedy: str) -> Integrity:
    """Compare a file's hash with the one recorded when it was written; refuse a mismatch, warn where none was.

    ``changed_since``: "exported or built", "built", ...; ``remedy``: what to run instead, as an imperative.
    """
    if not isinstance(recorded, str):
        # Only a missing or empty hash means "written before hashes" (loaded unverified, with a warning); a value
        # of another type is a damaged record and must not switch the check off (found by fuzzing sidecars).
        raise CosaEdgeError(f"{path} records an unreadable hash ({json.dumps(recorded)[:40]}, not text); {remedy}")
    if not recorded:
        warnings.warn(f"{path} records no hash (it was written before cosa-edge checked them), so it is loaded "
                      f"unverified; {remedy} to have it checked", UnverifiedArtifactWarning, stacklevel=3)
        return Integrity(actual, verified=False)
    if actual != recorded:
        raise CosaEdgeError(f"{path} has been changed since it was {changed_since} (hash {actual[:_SHOWN]}... != "
                            f"{recorded[:_SHOWN]}... recorded); {remedy}")
    return Integrity(actual, verified=True)


def verify_onnx_bytes(data: bytes | memoryview, path: Path) -> Integrity:
    """Check a cosa-edge ONNX model's graph hash against its metadata (ValueError if ``data`` is not protobuf).

    A model without cosa-edge metadata is not checked here: loading its metadata says it is not ours.
    """
    return verify_scanned(*scan_onnx(data), path)


def verify_scanned(digest: str, props: dict[str, str], path: Path) -> Integrity:
    """:func:`verify_onnx_bytes` on what :func:`scan_onnx` read, for a loader that needs the metadata too."""
    if not any(key.startswith(PREFIX) for key in props):
        return Integrity(digest, verified=False)
    try:
        recorded = json.loads(props.get(GRAPH_HASH_KEY, '""'))  # JSON-encoded, like every metadata value
    except json.JSONDecodeError:
        recorded = None
    if not isinstance(recorded, str):
        raise CosaEdgeError(f"{path} has an unreadable {GRAPH_HASH_KEY}; export it again with `cosa-edge export`")
    return check_sha256(digest, recorded, Path(path), "exported or built",
                        "export it again with `cosa-edge export` (and build engines from the new export)")


def read_verified_onnx(path: Path) -> bytes:
    """The bytes of an ONNX model whose graph hash matches its metadata; the caller parses these same bytes."""
    data = Path(path).read_bytes()
    try:
        verify_onnx_bytes(data, path)
    except ValueError as exc:
        raise CosaEdgeError(f"{path} is not a readable ONNX model ({exc}); export it again") from None
    return data


@dataclass(frozen=True)
class SerializedModel:
    """An ONNX model serialized once without its metadata, and the graph hash of those bytes."""

    body: bytes
    sha256: str

    @classmethod
    def of(cls, model: Any) -> SerializedModel:  # model: onnx.ModelProto
        saved = list(model.metadata_props)
        del model.metadata_props[:]
        try:
            body = model.SerializeToString()
        finally:
            model.metadata_props.extend(saved)  # the caller's model is left as it was
        return cls(body, scan_onnx(body)[0])  # a scan, not sha256(body): one definition of the hash

    def write(self, path: Path, metadata: ModelMetadata) -> ModelMetadata:
        """Write the model with ``metadata`` (its graph_sha256 set) atomically; returns that metadata."""
        onnx = require("onnx")
        metadata = metadata.with_changes(graph_sha256=self.sha256)
        props = onnx.ModelProto()
        for key, value in metadata.to_props().items():
            props.metadata_props.add(key=key, value=value)
        with atomic_open(path) as handle:
            handle.write(self.body)
            handle.write(props.SerializeToString())  # only field 14 records: appended after the hashed bytes
        return metadata


def write_model_with_metadata(model: Any, metadata: ModelMetadata, path: Path) -> ModelMetadata:
    """Every writer of an ONNX model uses this: ``model`` with ``metadata`` and a fresh graph hash, atomically.

    The in-memory ``model`` keeps its own metadata_props; the returned metadata is what the file carries.
    """
    return SerializedModel.of(model).write(Path(path), metadata)


def read_sidecar_json(path: Path, remedy: str) -> dict[str, Any]:
    """An engine's JSON sidecar as {"metadata": {...}, "build": {...}}, or one CosaEdgeError saying what is wrong.

    The sidecar records the hashes its engine's files are checked against, so nothing has checked it when it is
    read: it is held to its shape here (found by fuzzing, docs/fuzzing.md: a sidecar whose "build" was a string
    ended in "'str' object has no attribute 'get'", one that was not UTF-8 in UnicodeDecodeError)."""
    path = Path(path)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise CosaEdgeError(f"{path} is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at position {exc.start}); "
                            f"{remedy}") from None
    except json.JSONDecodeError as exc:
        raise CosaEdgeError(f"{path} is not valid JSON: {exc}; {remedy}") from None
    if not isinstance(document, dict):
        raise CosaEdgeError(f"{path} is not a cosa-edge sidecar (its JSON is not an object); {remedy}")
    for key in ("metadata", "build"):
        if key in document and not isinstance(document[key], dict):
            raise CosaEdgeError(f"{path} is not a cosa-edge sidecar (its \"{key}\" is not an object); {remedy}")
    return document
