"""FP32 ONNX -> FP16 ONNX, with the layers that overflow or lose meaning in FP16 kept in FP32.

Part of building an engine (:mod:`cosa_edge.engines.build`), so it lives beside
the builder: it starts from an exported ONNX model, not from a checkpoint.

TensorRT 11 builds only strongly typed networks, so FP16 comes from an FP16
ONNX rather than a builder flag; TensorRT 10 uses the flag with the same layers
pinned to FP32 (:func:`fp32_node_names` names them). Kept in FP32:

* every Softmax (the attention softmax over 64 keys sums exponentials that
  overflow FP16's 65504, and the output softmax feeds a 0.5 threshold);
* the COSA region-map subgraph (comparisons, Sobel, pooling: exact integer
  arithmetic that must match the reference).

Needs onnx and onnxconverter-common (the ``export`` extra); no torch.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from .._optional import require
from ..contract import ModelMetadata
from .artifact import read_verified_onnx, write_model_with_metadata

if TYPE_CHECKING:  # the `export` extra, imported through require() where it is used
    import onnx

FP32_OPS = ("Softmax",)
REGION_SCOPE = "/model/cosa/"
OOD_SCOPE = "/ood/"  # the Mahalanobis score: squared distances over hundreds of dimensions overflow FP16


def fp32_node_names(model: onnx.ModelProto) -> list[str]:
    """Nodes kept in FP32: the region-map step (COSA's own nodes outside its attention blocks, and the plugin
    node) and the out-of-distribution score."""
    return [node.name for node in model.graph.node
            if (node.name.startswith(REGION_SCOPE) and "/attention" not in node.name) or node.domain == "cosa_edge"
            or node.name.startswith(OOD_SCOPE)]


def _restore_fp32_resize_scales(model: onnx.ModelProto) -> None:
    """Give Resize back its FP32 ``scales``: ONNX types that input as float whatever the data's type.

    The converter turns every float constant into FP16, the decoder's constant scale factors (2.0,
    exact in either type) included, which leaves an invalid graph. Resize itself runs in FP16.
    """
    onnx = require("onnx")
    numpy_helper = onnx.numpy_helper
    scale_names = {node.input[2] for node in model.graph.node if node.op_type == "Resize" and len(node.input) > 2
                   and node.input[2]}
    half = onnx.TensorProto.FLOAT16
    for node in model.graph.node:
        if node.op_type == "Constant" and node.output[0] in scale_names and node.attribute[0].t.data_type == half:
            value = numpy_helper.to_array(node.attribute[0].t).astype("float32")
            node.attribute[0].t.CopyFrom(numpy_helper.from_array(value, node.output[0]))
    for index, tensor in enumerate(model.graph.initializer):
        if tensor.name in scale_names and tensor.data_type == half:
            model.graph.initializer[index].CopyFrom(
                numpy_helper.from_array(numpy_helper.to_array(tensor).astype("float32"), tensor.name))
    for info in model.graph.value_info:
        if info.name in scale_names:
            info.type.tensor_type.elem_type = onnx.TensorProto.FLOAT


def convert_to_fp16(source: Path, destination: Path) -> ModelMetadata:
    """Write an FP16 copy of ``source`` with FP32 inputs and outputs (the engine contract is unchanged)."""
    onnx = require("onnx")
    float16 = require("onnxconverter_common.float16")
    model = onnx.load_from_string(read_verified_onnx(source))  # a changed model is refused, not converted and re-hashed
    metadata = ModelMetadata.from_props({p.key: p.value for p in model.metadata_props}, str(source))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # one warning per tiny weight truncated to FP16's range
        converted = float16.convert_float_to_float16(model, keep_io_types=True, op_block_list=list(FP32_OPS),
                                                     node_block_list=fp32_node_names(model))
    _restore_fp32_resize_scales(converted)
    # A new graph: it gets its own graph hash.
    return write_model_with_metadata(converted, metadata.with_changes(precision="fp16"), destination)
