"""TensorRT 10 FP16 builds pin the region maps and softmax to FP32, on floating-point tensors only (defect 2).

Stand-in: the network. TensorRT's INetworkDefinition exists only in the full TensorRT (not in the
lean wheels the default suite has), so a small fake network with layers of the kinds the region-map
subgraph holds records what pin_fp32_layers asks of each layer. Whether TensorRT accepts those
requests is not checked here; it needs a GPU machine with TensorRT (tests/test_tensorrt.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace

from cosa_edge.engines.tensorrt_build import pin_fp32_layers

trt = SimpleNamespace(float32="FLOAT", float16="HALF", bfloat16="BF16", bool="BOOL", int32="INT32",
                      LayerType=SimpleNamespace(SOFTMAX="SOFTMAX", PLUGIN_V3="PLUGIN_V3", ELEMENTWISE="ELEMENTWISE",
                                                CAST="CAST", CONVOLUTION="CONVOLUTION", UNARY="UNARY",
                                                CONSTANT="CONSTANT"))


@dataclass
class Tensor:
    dtype: str


@dataclass
class Layer:
    name: str
    type: str
    inputs: list[Tensor | None]
    outputs: list[Tensor]
    precision_set: str | None = None
    output_types: dict[int, str] = field(default_factory=dict)

    num_inputs = property(lambda self: len(self.inputs))
    num_outputs = property(lambda self: len(self.outputs))

    def get_input(self, index: int) -> Tensor | None:
        return self.inputs[index]

    def get_output(self, index: int) -> Tensor:
        return self.outputs[index]

    @property
    def precision(self) -> str | None:
        return self.precision_set

    @precision.setter
    def precision(self, value: str) -> None:
        self.precision_set = value

    def set_output_type(self, index: int, dtype: str) -> None:
        self.output_types[index] = dtype


class Network:
    def __init__(self, layers: list[Layer]) -> None:
        self.layers = layers

    num_layers = property(lambda self: len(self.layers))

    def get_layer(self, index: int) -> Layer:
        return self.layers[index]


def _region_subgraph() -> dict[str, Layer]:
    f32, f16, boolean = Tensor("FLOAT"), Tensor("HALF"), Tensor("BOOL")
    return {
        "greater": Layer("/model/cosa/Greater", "ELEMENTWISE", [f16, f16], [boolean]),
        "or": Layer("/model/cosa/Or", "ELEMENTWISE", [boolean, boolean], [boolean]),
        "not": Layer("/model/cosa/Not", "UNARY", [boolean], [boolean]),
        "cast": Layer("/model/cosa/Cast", "CAST", [boolean], [f32]),
        "sobel": Layer("/model/cosa/Conv", "CONVOLUTION", [f32, None], [f32]),
        "softmax": Layer("/model/head/Softmax", "SOFTMAX", [f16], [f16]),
        "plugin": Layer("cosa_plugin", "PLUGIN_V3", [f16], [f32]),
        "decoder": Layer("/model/decoder/Conv", "CONVOLUTION", [f16], [f16]),
        "shape_constant": Layer("/model/cosa/Constant", "CONSTANT", [], [Tensor("INT32")]),
    }


def test_only_floating_point_tensors_are_pinned() -> None:
    layers = _region_subgraph()
    region_names = {layer.name for key, layer in layers.items() if key not in ("softmax", "plugin", "decoder")}
    pinned = pin_fp32_layers(Network(list(layers.values())), trt, region_names)
    # Comparisons and logic have BOOL outputs: neither a precision nor an output type is asked of them.
    for key in ("greater", "or", "not", "shape_constant"):
        assert layers[key].precision_set is None and layers[key].output_types == {}, key
    # A cast from BOOL computes on BOOL: its FP32 output is pinned, its precision is not.
    assert layers["cast"].precision_set is None and layers["cast"].output_types == {0: "FLOAT"}
    for key in ("sobel", "softmax", "plugin"):
        assert layers[key].precision_set == "FLOAT" and layers[key].output_types == {0: "FLOAT"}, key
    # Outside the subgraph nothing changes: the decoder stays FP16.
    assert layers["decoder"].precision_set is None and layers["decoder"].output_types == {}
    assert pinned == 4  # cast, sobel, softmax, plugin
