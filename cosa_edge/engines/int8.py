"""FP32 ONNX -> INT8 QDQ ONNX: static quantization calibrated on real images.

Part of building an engine (:mod:`cosa_edge.engines.build`), beside the FP16 conversion. The
quantized graph is an ONNX model in QDQ form (QuantizeLinear/DequantizeLinear pairs around the
layers that run in 8 bits), which ONNX Runtime fuses into integer kernels, TensorRT builds as an
explicitly quantized network, and OpenVINO reads as its own low-precision model.

What runs in INT8 and what stays FP32 (measured on a 2-core AMD EPYC with AVX-512 VNNI, docs/deployment.md;
rerun scripts/int8_variants.py on an AVX2-only CPU, where the choices may differ):

* INT8: the convolutions of the encoder and the decoder blocks, with the element-wise and
  layout operators between them (``Add``, ``Relu``, ``Concat``, ``Resize``, ``MaxPool``). With
  only ``Conv`` quantized, every residual ``Add`` and decoder ``Concat``/``Resize`` sat between a
  DequantizeLinear and a QuantizeLinear and ran in FP32: 0.55x the FP32 time; quantizing them too
  gave 0.46x (256 px).
* FP32: the input's normalisation, the decoder's head (its logits are the mask's 0.5 threshold),
  the whole COSA module (its region maps are exact integer arithmetic, its attention works on
  8x8 features and costs little), every Softmax, the classifier and the out-of-distribution score:
  the outputs are probabilities and a distance, as in the FP16 path (:mod:`cosa_edge.engines.fp16`).

Two schemes:

* ``onnxruntime``: unsigned 8-bit activations (asymmetric), signed 8-bit weights per output channel
  (symmetric), the U8S8 form ONNX Runtime runs fastest on x86. On AVX2 without VNNI ONNX Runtime's
  default U8S8 kernel adds pairs of 8-bit products in saturating 16 bits; cosa-edge runs INT8 graphs
  with ``session.x64quantprecision`` (:func:`onnxruntime_session_entries`), ONNX Runtime's exact U8U8
  path on such CPUs, which gives the numbers a VNNI CPU gives (measured under an emulated AVX2 CPU,
  docs/deployment.md, "INT8 on CPUs without VNNI"), rather than 7-bit weights (:data:`ORT_REDUCE_RANGE`).
* ``tensorrt``: signed 8-bit activations and weights, both symmetric (zero point 0), as TensorRT's
  explicit quantization requires, and FP32 biases. ONNX Runtime runs this graph too, to check it on a machine
  without a GPU: with quantize and dequantize computed in float (``session.disable_quant_qdq``), which is
  TensorRT's arithmetic (exact 8-bit products summed in 32 bits), not whichever 8-bit kernel this CPU has.

Needs onnx and onnxruntime (the ``export`` extra); no torch.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._optional import require
from ..contract import INPUT_NAME, ModelMetadata, stack_frames
from ..data import Sample, resize_grey
from ..errors import CosaEdgeError
from .artifact import read_verified_onnx, write_model_with_metadata
from .fp16 import OOD_SCOPE, REGION_SCOPE, fp32_node_names
from .int8_arithmetic import (ASYMMETRIC_SCHEME, EXACT_X86_PRODUCTS, QDQ_IN_FLOAT, SYMMETRIC_SCHEME, arithmetic,
                              onnxruntime_session_entries, scheme_name)

__all__ = ["EXACT_X86_PRODUCTS", "QDQ_IN_FLOAT", "arithmetic", "onnxruntime_session_entries", "scheme_name"]

#: Operator types that run in INT8 (outside the FP32 scopes below). Clip is ReLU6 (the EfficientNet-Lite encoders):
#: quantized, ONNX Runtime's graph absorbs it into the convolution's output range (no float island between a
#: DequantizeLinear and a QuantizeLinear: 32 of them in lite0 otherwise), and TensorRT's keeps it between Q/DQ.
QUANTIZED_OPS = ("Conv", "Add", "Relu", "Clip", "Concat", "Resize", "MaxPool")
#: Node-name scopes kept in FP32 whatever their operator: COSA (region maps and attention), plain self-attention,
#: the decoder's head and its final resize (the logits behind the mask), and the out-of-distribution score.
FP32_SCOPES = (REGION_SCOPE, "/model/self_attention/", "/model/decoder/head", "/model/decoder/Resize", OOD_SCOPE)
#: Calibration methods of ONNX Runtime's calibrator, by the name the command line takes.
CALIBRATION_METHODS = ("minmax", "percentile", "entropy")
DEFAULT_CALIBRATION_METHOD = "minmax"
#: On BUSI (fold 0, 156 held-out images) 100 and 200 calibration images left 2 images whose lesion presence
#: flipped; 400 left none (docs/deployment.md).
DEFAULT_CALIBRATION_COUNT = 400
#: The histogram calibrators (percentile, entropy) keep every image's activations in memory until the end
#: (every intermediate tensor of every image: megabytes an image, four times as much at twice the size).
HISTOGRAM_MAX_IMAGES = 100
#: 7-bit weights (ONNX Runtime's reduce_range): off. On the AVX-512 VNNI CPU measured it cost accuracy (2 presence
#: flips on BUSI fold 0) and gained no speed; on AVX2 without VNNI, where it would avoid the 16-bit saturation,
#: ONNX Runtime's exact U8U8 path (session.x64quantprecision) does so without losing a bit of the weights.
ORT_REDUCE_RANGE = False


@dataclass(frozen=True)
class Int8Scheme:
    """The 8-bit types and range handling of one runtime's INT8 graph."""

    name: str
    activation_type: str  # "uint8" or "int8"
    weight_type: str
    activation_symmetric: bool
    reduce_range: bool
    # Convolution biases as int32 (scale = input scale x weight scale), which ONNX Runtime's integer kernels take;
    # TensorRT dequantizes only 8-bit (and FP8/4-bit) tensors, so its biases stay FP32 and it fuses them itself.
    quantize_bias: bool = True
    per_channel: bool = True  # weights: one scale per output channel (always symmetric)


SCHEMES = {scheme.name: scheme for scheme in (
    Int8Scheme(ASYMMETRIC_SCHEME, "uint8", "int8", activation_symmetric=False, reduce_range=ORT_REDUCE_RANGE),
    Int8Scheme(SYMMETRIC_SCHEME, "int8", "int8", activation_symmetric=True, reduce_range=False, quantize_bias=False),
)}


@dataclass(frozen=True)
class CalibrationImages:
    """The engine inputs that calibrate the activation ranges, and what they were (for the metadata)."""

    frames: np.ndarray  # float32 (N, 1, S, S) grey levels, as the engine takes them
    source: str  # the data spec or file name, never a path to a patient's folder
    names: tuple[str, ...]  # the images' names within their data set, to show they were held out of the check

    def describe(self) -> dict[str, Any]:
        return {"source": self.source, "images": len(self.frames)}


def is_quantized(model: Any) -> bool:  # model: onnx.ModelProto
    """Whether a graph already holds quantization (QDQ pairs or integer operators)."""
    return any(node.op_type in ("QuantizeLinear", "DequantizeLinear", "QLinearConv", "ConvInteger", "MatMulInteger")
               for node in model.graph.node)


def fp32_kept_nodes(model: Any) -> list[str]:
    """The nodes that stay FP32 although their operator type is one that is quantized."""
    names = set(fp32_node_names(model))
    return [node.name for node in model.graph.node if node.name in names or node.name.startswith(FP32_SCOPES)]


def quantized_nodes(model: Any) -> list[str]:
    kept = set(fp32_kept_nodes(model))
    return [node.name for node in model.graph.node if node.op_type in QUANTIZED_OPS and node.name not in kept]


class _Reader:
    """ONNX Runtime's calibration data reader over the calibration frames, one image at a time."""

    def __init__(self, frames: np.ndarray) -> None:
        self._frames: Iterator[np.ndarray] = iter(frames)

    def get_next(self) -> dict[str, np.ndarray] | None:
        frame = next(self._frames, None)
        return None if frame is None else {INPUT_NAME: np.ascontiguousarray(frame[None], dtype=np.float32)}

    def rewind(self) -> None:  # part of the reader interface; calibration reads the frames once
        pass


@contextlib.contextmanager
def _quiet_quantizer() -> Iterator[None]:
    """ONNX Runtime's quantizer logs advice ("consider pre-processing") on the root logger at WARNING for
    every model; it is not the user's to act on. Errors still show."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def _check_source(model: Any, metadata: ModelMetadata, source: Path) -> None:
    if metadata.precision != "fp32" or is_quantized(model):
        raise CosaEdgeError(f"{source} is already "
                            f"{metadata.precision if metadata.precision != 'fp32' else 'quantized'}; "
                            "quantize the FP32 export (`cosa-edge export`), not an engine built from it")


def quantize_int8(source: Path, destination: Path, calibration: CalibrationImages, scheme: Int8Scheme,
                  method: str = DEFAULT_CALIBRATION_METHOD,
                  extra_metadata: dict[str, Any] | None = None) -> ModelMetadata:
    """Write an INT8 QDQ copy of the FP32 export ``source``; inputs and outputs stay float32 (the contract)."""
    onnx = require("onnx")
    ort = require("onnxruntime")
    quantization = require("onnxruntime.quantization")
    if method not in CALIBRATION_METHODS:
        raise CosaEdgeError(f"calibration method {method!r}: choose one of {', '.join(CALIBRATION_METHODS)}")
    model = onnx.load_from_string(read_verified_onnx(source))  # a changed model is refused, not quantized
    metadata = ModelMetadata.from_props({p.key: p.value for p in model.metadata_props}, str(source))
    _check_source(model, metadata, source)
    size = metadata.input_size
    if calibration.frames.ndim != 4 or calibration.frames.shape[1:] != (1, size, size):
        raise CosaEdgeError(f"the calibration images are {tuple(calibration.frames.shape[1:])} but {source.name} takes "
                            f"(1, {size}, {size}); calibrate with images of the model's input size")
    if len(calibration.frames) == 0:
        raise CosaEdgeError("no calibration images; give --calib-data with at least one image")
    if method != "minmax" and len(calibration.frames) > HISTOGRAM_MAX_IMAGES:
        raise CosaEdgeError(f"--calib-method {method} holds every calibration image's activations in memory at once; "
                            f"give --calib-count {HISTOGRAM_MAX_IMAGES} or fewer (minmax takes any number)")
    nodes = quantized_nodes(model)
    if not nodes:
        raise CosaEdgeError(f"{source.name} has no layers that cosa-edge quantizes ({', '.join(QUANTIZED_OPS)} outside "
                            "the FP32 scopes)")
    types = {"uint8": quantization.QuantType.QUInt8, "int8": quantization.QuantType.QInt8}
    methods = {"minmax": quantization.CalibrationMethod.MinMax, "percentile": quantization.CalibrationMethod.Percentile,
               "entropy": quantization.CalibrationMethod.Entropy}
    del model.metadata_props[:]  # the quantizer copies them verbatim; the INT8 model gets its own below
    with tempfile.TemporaryDirectory() as tmp, _quiet_quantizer():
        plain, quantized = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        onnx.save(model, str(plain))
        try:
            quantization.quantize_static(
                str(plain), str(quantized), _Reader(calibration.frames), quant_format=quantization.QuantFormat.QDQ,
                per_channel=scheme.per_channel, reduce_range=scheme.reduce_range,
                activation_type=types[scheme.activation_type], weight_type=types[scheme.weight_type],
                op_types_to_quantize=list(QUANTIZED_OPS), nodes_to_quantize=nodes,
                calibrate_method=methods[method],
                # Not CalibMaxIntermediateOutputs: in ONNX Runtime 1.32 its MinMax calibrator discards each full
                # chunk of collected ranges instead of merging it (with 32 of 400 images, only the last 16 counted).
                # MinMax keeps only each tensor's per-image min and max, so memory stays small without it.
                extra_options={"ActivationSymmetric": scheme.activation_symmetric, "WeightSymmetric": True,
                               "QuantizeBias": scheme.quantize_bias},
                calibration_providers=["CPUExecutionProvider"])
        except CosaEdgeError:
            raise
        except Exception as exc:  # the quantizer raises bare ValueErrors and runtime errors from deep inside
            raise CosaEdgeError(f"ONNX Runtime could not quantize {source.name}: {exc}") from None
        result = onnx.load(str(quantized))
    record = {"scheme": asdict(scheme), "calibration": {**calibration.describe(), "method": method},
              "quantized_ops": list(QUANTIZED_OPS), "quantized_nodes": len(nodes),
              "fp32_scopes": list(FP32_SCOPES), "onnxruntime_version": ort.__version__, **(extra_metadata or {})}
    return write_model_with_metadata(result, metadata.with_changes(precision="int8", quantization=record), destination)


def qdq_summary(model: Any) -> dict[str, Any]:
    """What a QDQ graph holds: the integer types and zero points of its Q/DQ nodes, and which nodes compute in
    8 bits (for tests and the docs).

    A node computes in 8 bits where it is a QDQ unit (what runtimes fuse into an integer kernel): its data
    input, and its weights where it has any, come from DequantizeLinear, and its output goes only to
    QuantizeLinear. A node that reads a dequantized tensor with FP32 weights, or whose output stays float,
    computes in FP32 (on 8-bit-rounded values where its input was quantized upstream).
    """
    onnx = require("onnx")
    numpy_helper = onnx.numpy_helper
    initializers = {t.name: t for t in model.graph.initializer}
    constants = {n.output[0]: n.attribute[0].t for n in model.graph.node if n.op_type == "Constant"}
    dequantized = {n.output[0] for n in model.graph.node if n.op_type == "DequantizeLinear"}
    consumers: dict[str, list[str]] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node.op_type)
    zero_points, types = [], set()
    for node in model.graph.node:
        if node.op_type not in ("QuantizeLinear", "DequantizeLinear") or len(node.input) < 3:
            continue
        tensor = initializers.get(node.input[2]) or constants.get(node.input[2])
        if tensor is None:
            continue
        values = numpy_helper.to_array(tensor)
        types.add(str(values.dtype))
        zero_points.extend(np.ravel(values).astype(int).tolist())
    int8_nodes = []
    for node in model.graph.node:
        if node.op_type in ("QuantizeLinear", "DequantizeLinear") or not node.input or not node.output:
            continue
        data_inputs = [node.input[0]] + (list(node.input[1:2]) if node.op_type in ("Conv", "MatMul", "Gemm", "Add")
                                         else [])
        outputs_quantized = all(kind == "QuantizeLinear" for kind in consumers.get(node.output[0], ["none"]))
        if all(name in dequantized for name in data_inputs) and outputs_quantized:
            int8_nodes.append(node.name)
    return {"types": sorted(types), "zero_points": sorted(set(zero_points)), "int8_nodes": sorted(int8_nodes)}


def calibration_from_samples(samples: list[Sample], size: int, count: int, source: str,
                             seed: int = 0) -> CalibrationImages:
    """``count`` images drawn at random (seeded) from ``samples``, resized by the one preprocessing function."""
    if not samples:
        raise CosaEdgeError(f"the calibration data {source} holds no images")
    if count < 1:
        raise CosaEdgeError(f"--calib-count must be at least 1, not {count}")
    order = np.random.default_rng(seed).permutation(len(samples))[:count]
    chosen = [samples[i] for i in sorted(order)]
    return CalibrationImages(stack_frames([resize_grey(s.image, size) for s in chosen]), source,
                             tuple(s.name for s in chosen))


def calibration_from_file(path: Path, size: int, count: int) -> CalibrationImages:
    """Engine inputs saved as a .npy array: (N, 1, S, S) or (N, S, S) grey levels 0..255 at the model's size."""
    path = Path(path)
    if not path.is_file():
        raise CosaEdgeError(f"calibration file {path} does not exist")
    try:
        frames = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise CosaEdgeError(f"{path.name} is not a readable .npy array ({exc})") from None
    if frames.ndim == 3:
        frames = frames[:, None]
    if frames.ndim != 4 or frames.shape[1] != 1 or len(frames) == 0:
        raise CosaEdgeError(f"{path.name} holds an array of shape {frames.shape}; calibration frames are (N, 1, S, S) "
                            "or (N, S, S) grey levels, with N at least 1")
    if frames.shape[2:] != (size, size):
        raise CosaEdgeError(f"{path.name} holds {frames.shape[2]}x{frames.shape[3]} frames but the model takes "
                            f"{size}x{size}; calibrate with frames of the model's input size (or give a data spec, "
                            "whose images are resized for you)")
    frames = frames[:count].astype(np.float32)
    return CalibrationImages(frames, path.name, tuple(f"{path.name}[{i}]" for i in range(len(frames))))
