"""A tiny real cosa-edge engine for fuzzing `cosa-edge infer`: an ONNX graph built with onnx.helper, no torch.

The harness fuzzes the inputs, not the model, so the engine only has to be a genuine engine file: it passes
the hash check and the contract checks and runs in ONNX Runtime, as a user's exported model would. Its lesion
map is "darker than mid-grey" and its class probability follows the mean brightness, so that the pipeline's
post-processing (masks, sizes, presence) runs on every frame.
"""

from __future__ import annotations

from pathlib import Path

from .._optional import require
from ..contract import CLASS_OUTPUT, INPUT_NAME, LESION_OUTPUT, ModelMetadata
from ..engines.artifact import write_model_with_metadata

#: Model input side: small, so that the engine costs nothing next to decoding.
ENGINE_SIZE = 32


def write_tiny_engine(path: Path, size: int = ENGINE_SIZE) -> Path:
    """Write a genuine (hash-recorded) ONNX engine to ``path``; needs the ``export`` extra (onnx)."""
    onnx = require("onnx")
    helper, tensor = onnx.helper, onnx.TensorProto
    constants = [helper.make_tensor("half", tensor.FLOAT, [], [0.5]),
                 helper.make_tensor("scale", tensor.FLOAT, [], [-0.05]),
                 helper.make_tensor("mid", tensor.FLOAT, [], [128.0]),
                 helper.make_tensor("weights", tensor.FLOAT, [1, 2], [1.0 / 255.0, -1.0 / 255.0]),
                 helper.make_tensor("bias", tensor.FLOAT, [2], [0.0, 1.0])]
    nodes = [
        # lesion = sigmoid(-0.05 * (x - 128)): dark pixels are lesion.
        helper.make_node("Sub", [INPUT_NAME, "mid"], ["centred"]),
        helper.make_node("Mul", ["centred", "scale"], ["logits"]),
        helper.make_node("Sigmoid", ["logits"], [LESION_OUTPUT]),
        # classes = softmax of (m / 255, 1 - m / 255) for the frame's mean grey level m.
        helper.make_node("ReduceMean", [INPUT_NAME], ["mean"], keepdims=0, axes=[1, 2, 3]),
        helper.make_node("Unsqueeze", ["mean", "one"], ["column"]),
        helper.make_node("Gemm", ["column", "weights", "bias"], ["class_logits"]),
        helper.make_node("Softmax", ["class_logits"], [CLASS_OUTPUT], axis=1),
    ]
    constants.append(helper.make_tensor("one", tensor.INT64, [1], [1]))
    graph = helper.make_graph(
        nodes, "cosa_edge_fuzz_engine",
        [helper.make_tensor_value_info(INPUT_NAME, tensor.FLOAT, ["batch", 1, size, size])],
        [helper.make_tensor_value_info(LESION_OUTPUT, tensor.FLOAT, ["batch", 1, size, size]),
         helper.make_tensor_value_info(CLASS_OUTPUT, tensor.FLOAT, ["batch", 2])],
        constants)
    # Opset 17: ReduceMean still takes its axes as an attribute there.
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    metadata = ModelMetadata(architecture="fuzz-stand-in", encoder="none", input_size=size)
    write_model_with_metadata(model, metadata, Path(path))
    return Path(path)
