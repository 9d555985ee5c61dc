"""The COSA plugin node rewritten as standard ONNX ops, for runtimes that cannot run the plugin.

``cosa-edge export --cosa-op plugin`` writes the region maps as one ``cosa_edge::CosaRegionMasks``
node. TensorRT without ``tensorrt.plugin`` (before 10.6; JetPack 6 has 10.3) and ONNX Runtime
cannot run it, so ``build-engine`` replaces each such node with the same computation in standard
ops, following :mod:`cosa_edge.kernels.reference` step by step (tests compare the two exactly):

    lesion  = Cast(Greater(scores[1], scores[0]))           ties are background
    sobel   = Conv(Pad(lesion, edge), [Sobel x, Sobel y])   border replicated
    contour = Cast(Greater(Conv(Abs(sobel), ones), 0))      either response non-zero
    margin  = MaxPool 5x5, stride 1, pads 2                 zero outside (padding never wins a max of 0/1)
    maps    = Concat(background, tumour, margin) -> AveragePool over each (H/h) x (W/w) cell

Every value is a small integer or a fraction of one, so float32 holds them exactly.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._optional import require
from ..errors import CosaEdgeError
from ..kernels.cuda import launch_geometry

PLUGIN_DOMAIN = "cosa_edge"
PLUGIN_OP = "CosaRegionMasks"
_SOBEL_X = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], np.float32)


def plugin_nodes(model: Any) -> list[Any]:
    return [n for n in model.graph.node if n.op_type == PLUGIN_OP and n.domain == PLUGIN_DOMAIN]


def _static_spatial_size(model: Any, tensor: str) -> tuple[int, int]:
    onnx = require("onnx")
    inferred = onnx.shape_inference.infer_shapes(model)
    for info in [*inferred.graph.value_info, *inferred.graph.input]:
        if info.name == tensor:
            dims = info.type.tensor_type.shape.dim
            if len(dims) == 4 and dims[2].HasField("dim_value") and dims[3].HasField("dim_value"):
                return dims[2].dim_value, dims[3].dim_value
    raise CosaEdgeError(f"the size of {tensor!r}, the input of the COSA plugin node, is not fixed in the model; "
                        "export it again with `cosa-edge export`")


def _replacement(node: Any, height: int, width: int) -> tuple[list[Any], list[Any]]:
    """(nodes, initializers) computing ``node``'s output from its input with standard ops."""
    onnx = require("onnx")
    helper, numpy_helper = onnx.helper, onnx.numpy_helper
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    grid = (int(attrs["grid_h"]), int(attrs["grid_w"]))
    launch_geometry((1, 2, height, width), grid)  # the same shape rules as the kernel, one clear error
    tile = [height // grid[0], width // grid[1]]
    scores, out = node.input[0], node.output[0]
    p = f"{node.name or 'cosa_region_masks'}/standard/"

    def name(suffix: str) -> str:
        return p + suffix

    constants = {
        "starts0": np.array([0], np.int64), "starts1": np.array([1], np.int64), "ends1": np.array([1], np.int64),
        "ends2": np.array([2], np.int64), "axis1": np.array([1], np.int64),
        "pads": np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64),
        "sobel": np.stack([_SOBEL_X, _SOBEL_X.T])[:, None], "sum2": np.ones((1, 2, 1, 1), np.float32),
        "zero": np.array(0, np.float32), "one": np.array(1, np.float32),
    }
    initializers = [numpy_helper.from_array(v, name(k)) for k, v in constants.items()]
    float32 = onnx.TensorProto.FLOAT
    nodes = [
        helper.make_node("Slice", [scores, name("starts0"), name("ends1"), name("axis1")], [name("background_score")]),
        helper.make_node("Slice", [scores, name("starts1"), name("ends2"), name("axis1")], [name("lesion_score")]),
        helper.make_node("Greater", [name("lesion_score"), name("background_score")], [name("is_lesion")]),
        helper.make_node("Cast", [name("is_lesion")], [name("lesion")], to=float32),
        helper.make_node("Pad", [name("lesion"), name("pads")], [name("padded")], mode="edge"),
        helper.make_node("Conv", [name("padded"), name("sobel")], [name("gradients")], kernel_shape=[3, 3]),
        helper.make_node("Abs", [name("gradients")], [name("magnitudes")]),
        helper.make_node("Conv", [name("magnitudes"), name("sum2")], [name("edge_strength")], kernel_shape=[1, 1]),
        helper.make_node("Greater", [name("edge_strength"), name("zero")], [name("is_contour")]),
        helper.make_node("Cast", [name("is_contour")], [name("contour")], to=float32),
        helper.make_node("MaxPool", [name("contour")], [name("margin")], kernel_shape=[5, 5], pads=[2, 2, 2, 2],
                         strides=[1, 1]),
        helper.make_node("Sub", [name("one"), name("margin")], [name("outside_margin")]),
        helper.make_node("Mul", [name("lesion"), name("outside_margin")], [name("tumour")]),
        helper.make_node("Sub", [name("one"), name("lesion")], [name("not_lesion")]),
        helper.make_node("Mul", [name("not_lesion"), name("outside_margin")], [name("background")]),
        helper.make_node("Concat", [name("background"), name("tumour"), name("margin")], [name("maps")], axis=1),
        helper.make_node("AveragePool", [name("maps")], [out], kernel_shape=tile, strides=tile),
    ]
    return nodes, initializers


def replace_plugin_nodes(model: Any) -> int:
    """Rewrite every COSA plugin node of ``model`` (an onnx.ModelProto) in place; returns how many."""
    onnx = require("onnx")
    targets = plugin_nodes(model)
    if not targets:
        return 0
    sizes = {id(n): _static_spatial_size(model, n.input[0]) for n in targets}
    rewritten = []
    for node in model.graph.node:
        if id(node) not in sizes:
            rewritten.append(node)
            continue
        nodes, initializers = _replacement(node, *sizes[id(node)])
        rewritten.extend(nodes)
        model.graph.initializer.extend(initializers)
    del model.graph.node[:]
    model.graph.node.extend(rewritten)
    remaining = {n.domain for n in model.graph.node}
    for index in reversed(range(len(model.opset_import))):
        if model.opset_import[index].domain == PLUGIN_DOMAIN and PLUGIN_DOMAIN not in remaining:
            del model.opset_import[index]
    onnx.checker.check_model(model)
    return len(targets)
