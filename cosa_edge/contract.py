"""The engine contract: what every deployable artifact takes, returns and says about itself.

Both sides of the deployment use it: the export side (cosa_edge.export) writes
it into the ONNX model, the runtime side (cosa_edge.engines, stream, bench)
checks it when loading and feeds frames in its layout. It lives here, outside
both, so that neither side has to import the other. numpy and json only.

The metadata is stored as ONNX ``metadata_props`` (string keys ``cosa_edge.*``)
and copied into the JSON sidecar of a TensorRT engine.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .errors import CosaEdgeError

PREFIX = "cosa_edge."
INPUT_NAME = "image"
LESION_OUTPUT = "lesion_probability"
CLASS_OUTPUT = "class_probabilities"
#: Optional third output: the Mahalanobis distance of the model's features to its training features.
OOD_OUTPUT = "ood_score"

#: What the model may be used for, in every artifact, report, annotated frame and in --help.
INTENDED_USE = "Research use only, not for clinical diagnosis."

#: The engine contract, written into every artifact and the docs.
CONTRACT = (
    f"input '{INPUT_NAME}': float32 (N, 1, S, S), grey levels 0..255 of the frame resized to S x S "
    "(normalisation happens inside the graph); "
    f"outputs '{LESION_OUTPUT}': float32 (N, 1, S, S), the probability that each pixel is lesion "
    f"(mask = probability > 0.5); '{CLASS_OUTPUT}': float32 (N, 2), temperature-scaled softmax over the class "
    f"names; where present, '{OOD_OUTPUT}': float32 (N, 1), the out-of-distribution score (above the metadata's "
    "ood threshold: no verdict)"
)


def stack_frames(greys: Sequence[np.ndarray]) -> np.ndarray:
    """Frames already resized to S x S grey levels -> an engine's input batch, float32 (N, 1, S, S)."""
    return np.stack(greys).astype(np.float32)[:, None]


#: The JSON type each metadata value must have; the ONNX graph hash leaves metadata out (engines/artifact.py), so
#: nothing else vouches for it, and a value of another type failed deep in the pipeline with Python's own words
#: (found by fuzzing, docs/fuzzing.md). Lists hold strings.
_METADATA_TYPES: dict[str, type] = {
    "architecture": str, "encoder": str, "input_size": int, "class_names": list, "positive_class": str,
    "normalisation": dict, "outputs": list, "cosa_edge_version": str, "weights_sha256": str, "training_data": dict,
    "precision": str, "cosa_op": str, "presence": dict, "calibration": dict, "ood": dict, "quantization": dict,
    "intended_use": str, "graph_sha256": str, "model_card": str, "contract": str,
}
#: Numbers inside the metadata's records that the pipeline computes with: (record, entry) -> lowest value allowed
#: (exclusive where the tuple says so).
_METADATA_NUMBERS: dict[tuple[str, str], tuple[float, bool]] = {
    ("normalisation", "mean"): (float("-inf"), False), ("normalisation", "std"): (0.0, True),
    ("presence", "min_lesion_share"): (0.0, False), ("calibration", "temperature"): (0.0, True),
    ("ood", "threshold"): (float("-inf"), False),
}


def _check_metadata_types(decoded: dict[str, Any], source: str) -> None:
    """A CosaEdgeError naming the first metadata value of the wrong type or range."""
    def refuse(what: str) -> CosaEdgeError:
        return CosaEdgeError(f"{source} has unreadable cosa-edge metadata: {what}; export it again with "
                             "`cosa-edge export`")

    for key, value in decoded.items():
        expected = _METADATA_TYPES.get(key)
        if expected is None:
            continue
        if not isinstance(value, expected) or isinstance(value, bool):
            raise refuse(f"{key} is {json.dumps(value)[:40]}, not a JSON {expected.__name__}")
        if expected is list and not all(isinstance(item, str) for item in value):
            raise refuse(f"{key} must list names")
    if decoded.get("input_size", 1) < 1:
        raise refuse(f"input_size is {decoded['input_size']}")
    for (record, entry), (lowest, exclusive) in _METADATA_NUMBERS.items():
        value = decoded.get(record, {}).get(entry)
        if value is None:
            continue
        number = isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value)
        if not number or value < lowest or (exclusive and value == lowest):
            raise refuse(f"{record}.{entry} is {json.dumps(value)[:40]}")


@dataclass(frozen=True)
class ModelMetadata:
    architecture: str
    encoder: str
    input_size: int
    class_names: tuple[str, ...] = ("benign", "malignant")
    positive_class: str = "malignant"  # for clinical reading; the paper's tables use benign
    normalisation: dict[str, float] = field(default_factory=lambda: {"mean": 0.449, "std": 0.226})
    outputs: tuple[str, ...] = (LESION_OUTPUT, CLASS_OUTPUT)
    cosa_edge_version: str = ""
    weights_sha256: str = ""
    training_data: dict[str, Any] = field(default_factory=dict)
    precision: str = "fp32"
    cosa_op: str = "onnx"  # "onnx": standard ops; "plugin": the cosa_edge::CosaRegionMasks custom node
    # Lesion presence: a frame holds a lesion only where the mask covers at least this share of the region
    # of interest ({"min_lesion_share": float, "chosen_on": how it was chosen}); below it, no class is given.
    presence: dict[str, Any] = field(default_factory=dict)
    # Temperature scaling of the class logits, applied inside the graph ({"temperature": T, "fitted_on": ...}).
    calibration: dict[str, Any] = field(default_factory=dict)
    # Out-of-distribution score (output ood_score): a frame scoring above "threshold" is rejected
    # ({"threshold": float, "chosen_on": ...}); empty where the model has no such output.
    ood: dict[str, Any] = field(default_factory=dict)
    # INT8 engines: the scheme, the calibration images and method, what stayed FP32, and the build-time check
    # against the FP32 model (cosa_edge.engines.int8); empty for FP32 and FP16 models.
    quantization: dict[str, Any] = field(default_factory=dict)
    intended_use: str = INTENDED_USE
    # SHA-256 of the ONNX model with its metadata left out (cosa_edge.engines.artifact): written by every writer,
    # checked on load. In a TensorRT sidecar it is the hash of the ONNX model the plan was built from (the plan's
    # own is the sidecar's build.plan_sha256). Empty in models written before cosa-edge hashed them.
    graph_sha256: str = ""
    # The model card (Markdown) written at export (cosa_edge.export.model_card), also beside the model as .card.md.
    model_card: str = ""
    contract: str = CONTRACT

    def to_props(self) -> dict[str, str]:
        return {PREFIX + key: json.dumps(value) for key, value in asdict(self).items()}

    @classmethod
    def from_props(cls, props: dict[str, str], source: str) -> ModelMetadata:
        values = {k[len(PREFIX):]: v for k, v in props.items() if isinstance(k, str) and k.startswith(PREFIX)}
        unreadable = next((key for key, value in values.items() if not isinstance(value, str)), None)
        if unreadable is not None:  # a sidecar's metadata holds JSON text, as ONNX metadata_props do
            raise CosaEdgeError(f"{source} has unreadable cosa-edge metadata: {unreadable} is not JSON text; export "
                                "it again with `cosa-edge export`")
        if "architecture" not in values:
            raise CosaEdgeError(f"{source} is not a cosa-edge model (it carries no cosa_edge.* metadata); "
                                "export it with `cosa-edge export CKPT -o model.onnx`")
        try:
            decoded = {k: json.loads(v) for k, v in values.items() if k in cls.__dataclass_fields__}
        except json.JSONDecodeError as exc:
            raise CosaEdgeError(f"{source} has unreadable cosa-edge metadata: {exc}") from None
        _check_metadata_types(decoded, source)
        missing = [key for key in ("encoder", "input_size") if key not in decoded]  # architecture: checked above
        if missing:
            raise CosaEdgeError(f"{source} has unreadable cosa-edge metadata: it lacks {', '.join(missing)}; export "
                                "it again with `cosa-edge export`")
        for key in ("class_names", "outputs"):
            if key in decoded:
                decoded[key] = tuple(decoded[key])
        return cls(**decoded)

    def with_changes(self, **changes: Any) -> ModelMetadata:
        return ModelMetadata(**{**asdict(self), **changes})
