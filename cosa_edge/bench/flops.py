"""The model's arithmetic per image, counted from its ONNX graph: how close an engine runs to the machine.

Counted: the multiply-adds of Conv, ConvTranspose, MatMul and Gemm (two operations each; ONNX
Runtime's fused forms of them too), the
layers that hold nearly all of a convolutional network's work; element-wise operators are left
out. An INT8 graph does the same number of operations as its FP32 source, in 8 bits, so the
count is the same for both.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .._optional import require

if TYPE_CHECKING:  # the `export` extra, imported through require() where it is used
    import onnx

#: ONNX Runtime's offline optimisation fuses activations into these (same inputs, same arithmetic).
FUSED = {"FusedConv": "Conv", "FusedMatMul": "MatMul", "FusedGemm": "Gemm"}
COUNTED_OPS = ("Conv", "ConvTranspose", "MatMul", "Gemm", *FUSED)


def _shapes(model: onnx.ModelProto) -> dict[str, tuple[int, ...]]:
    """The shapes of the counted nodes' inputs and outputs, by running the graph once on one blank image.

    ONNX's static shape inference stops at the COSA region maps (their shapes depend on computed
    values), so the graph is run instead, with those tensors added as outputs.
    """
    onnx = require("onnx")
    ort = require("onnxruntime")
    from ..engines.plugin_fallback import replace_plugin_nodes

    replace_plugin_nodes(model)  # a `--cosa-op plugin` export: the same region maps in standard ops
    wanted = {name for node in model.graph.node if node.op_type in COUNTED_OPS for name in node.input[:2]}
    wanted |= {node.output[0] for node in model.graph.node if node.op_type in COUNTED_OPS}
    present = {o.name for o in model.graph.output}
    initialisers = {t.name for t in model.graph.initializer}
    for name in sorted(wanted - present - initialisers):
        model.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # keep every node as it is
    options.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])
    size = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    values = session.run(None, {model.graph.input[0].name: np.full([1, *size[1:]], 128.0, np.float32)})
    shapes = {o.name: tuple(v.shape) for o, v in zip(session.get_outputs(), values)}
    for tensor in model.graph.initializer:  # weights that are initializers are not graph outputs
        shapes[tensor.name] = tuple(int(d) for d in tensor.dims)
    return shapes


def _attribute(node: onnx.NodeProto, name: str, default: int) -> int:
    for attribute in node.attribute:
        if attribute.name == name:
            return int(attribute.i)
    return default


def _operations(node: onnx.NodeProto, shapes: dict[str, tuple[int, ...]]) -> int | None:
    """Two per multiply-add of one counted node, or None where a shape it needs is unknown."""
    kind = FUSED.get(node.op_type, node.op_type)
    out = shapes.get(node.output[0])
    weights = shapes.get(node.input[1])  # a weight tensor, or (MatMul) the right-hand activations
    if out is None or weights is None:
        return None
    if kind == "Conv":  # weights (Cout, Cin/group, kh, kw); out (N, Cout, H, W)
        return 2 * int(np.prod(out)) * int(np.prod(weights[1:]))
    left = shapes.get(node.input[0])
    if left is None:
        return None
    if kind == "ConvTranspose":  # weights (Cin, Cout/group, kh, kw): each input pixel spreads
        return 2 * int(np.prod(left)) * int(np.prod(weights[1:]))
    if kind == "MatMul":
        return 2 * int(np.prod(out)) * int(left[-1])
    # Gemm: A (M, K) or its transpose
    inner = left[0] if _attribute(node, "transA", 0) else left[-1]
    return 2 * int(np.prod(out)) * int(inner)


def gflop_per_image(path: Path) -> float | None:
    """Giga floating-point operations for one image, or None where shapes cannot be inferred (a plugin op)."""
    onnx = require("onnx")
    model = onnx.load(str(path))
    try:
        shapes = _shapes(model)
    except Exception:  # a graph ONNX Runtime cannot run here: no figure rather than a wrong one
        return None
    total = 0
    for node in model.graph.node:
        if node.op_type not in COUNTED_OPS:
            continue
        operations = _operations(node, shapes)
        if operations is None:
            return None
        total += operations
    return total / 1e9
