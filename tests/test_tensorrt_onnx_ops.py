"""Every operator of this project's ONNX exports against TensorRT 10.x's published ONNX operator support.

What this checks, for the standard FP32 export, its FP16 conversion and the plugin export of MTL-COSA (the
edge preset), and for the FP32 and FP16 exports of every other architecture in the registry and of a
bottleneck-block encoder (the paper preset's ResNet-101 itself, and VGG-16, with ``pytest -m slow``):

* the default-domain opset is inside the parser's supported range;
* every node (subgraphs included) is an operator the table marks supported;
* the element type of each input and output (from ``onnx.shape_inference``; Cast targets included) is one
  the table lists for that operator, and one TensorRT takes at all (no DOUBLE, UINT8 only at the network's
  edges, quantized types only around Q/DQ);
* the restrictions the table states, where an export can hit them: Resize modes, coordinate
  transformation and nearest modes; ``axes`` inputs of Slice / Squeeze / Unsqueeze / Pad / Reduce* that
  must be initializers; pooling rank, dilations and MaxPool's Indices output; Constant's attributes; plus
  two limits of the same revision's importers (Pad modes, linear Resize on at most 3 dimensions);
* custom-domain nodes (the ``cosa_edge::CosaRegionMasks`` plugin node) carry ``plugin_namespace``.

The table is ``tests/data/tensorrt_onnx_operators.json``: the support matrix ``docs/operators.md`` of
onnx/onnx-tensorrt at tag release/10.1-GA (commit 96e7811, 2024-06-17), with its source recorded there.

What this does not check: it is the published table, not the parser. Shape-dependent limits, the
restrictions the table states only in prose that no export hits, the plugin's own registration and
anything TensorRT's builder decides (tactics, precision, memory) are out of reach here; the real parse and
build happen only on a GPU machine with TensorRT (tests/test_tensorrt.py, marked ``trt``).

The models have random weights, so no training is needed: an export's operators follow from the architecture
and its configuration (the MTL-COSA exports use the configuration of conftest's ``trained_checkpoint``). The
weights only add Identity nodes where the exporter shares equal initializers, as fresh weights have many.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

onnx = pytest.importorskip("onnx")
torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")

from onnx import AttributeProto, TensorProto, helper, numpy_helper  # noqa: E402

from cosa_edge.config import load_preset  # noqa: E402
from cosa_edge.export.onnx_export import DEFAULT_OPSET, PLUGIN_DOMAIN, PLUGIN_NAME, export_onnx  # noqa: E402
from cosa_edge.model import ARCHITECTURES, build_model  # noqa: E402
from cosa_edge.train.checkpoint import save_checkpoint  # noqa: E402

TABLE_PATH = Path(__file__).parent / "data" / "tensorrt_onnx_operators.json"
TABLE = json.loads(TABLE_PATH.read_text(encoding="utf-8"))

DEFAULT_DOMAINS = ("", "ai.onnx")

# Inputs that ONNX types as indices, shapes, axes or scales whatever the type of the data an operator computes
# on. The table's "Supported Types" are the data's types, so these inputs are held only to the parser's general
# type list (Resize's INT64 ``sizes`` would otherwise fail Resize's FP32/FP16/BF16).
_REDUCE_OPS = ("ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceMax", "ReduceMean", "ReduceMin",
               "ReduceProd", "ReduceSum", "ReduceSumSquare")
PARAMETER_INPUTS: dict[str, set[int]] = {
    "ConstantOfShape": {0}, "CumSum": {1}, "Expand": {1}, "Gather": {1}, "GatherElements": {1}, "GatherND": {1},
    "OneHot": {1}, "Pad": {1, 3}, "Reshape": {1}, "Resize": {1, 2, 3}, "ScatterElements": {1}, "ScatterND": {1},
    "Slice": {1, 2, 3, 4}, "Split": {1}, "Squeeze": {1}, "Tile": {1}, "TopK": {1}, "Unsqueeze": {1},
    **{op: {1} for op in _REDUCE_OPS},
}
# Operators whose outputs ONNX types itself (BOOL from comparisons, INT64 indices and shapes): the table's types
# are those of their inputs, and their outputs are held only to the general list. MaxPool's and TopK's second
# outputs are INT64 indices too.
FIXED_OUTPUT_TYPES = {"Equal", "Greater", "GreaterOrEqual", "Less", "LessOrEqual", "IsInf", "IsNaN", "NonZero",
                      "Shape", "Size", "ArgMax", "ArgMin"}
INDEX_OUTPUTS = {"MaxPool": {1}, "TopK": {1}}

# The architectures' exports at a small size. LeNet's 5x5 and VGG-16's 7x7 adaptive average pools export only
# when the feature map is a multiple of that output (torch.onnx refuses them otherwise, at the presets' 256 px
# too): LeNet at 32 px (a 5x5 map), VGG-16 at 224 px (7x7), whose 134 M parameters take ~30 s, so it runs with
# ``pytest -m slow``. mtl_cosa is covered by the three named exports below.
SMALL_SIZE = 64
ARCHITECTURE_SIZES = {"lenet": 32, "vgg16": 224}
SLOW_ARCHITECTURES = {"vgg16"}
TINY_DECODER = (32, 16, 16, 8)


def _convert_to_fp16() -> Callable[[Path, Path], object]:
    pytest.importorskip("onnxconverter_common")
    from cosa_edge.engines.fp16 import convert_to_fp16

    return convert_to_fp16


# ---------------------------------------------------------------------------------------------------------------
# The check: a model against the table.


def _subgraphs(node: onnx.NodeProto) -> Iterator[onnx.GraphProto]:
    for attribute in node.attribute:
        if attribute.type == AttributeProto.GRAPH:
            yield attribute.g
        elif attribute.type == AttributeProto.GRAPHS:
            yield from attribute.graphs


def _walk(graph: onnx.GraphProto, constants: dict[str, onnx.TensorProto]
          ) -> Iterator[tuple[onnx.NodeProto, dict[str, onnx.TensorProto]]]:
    """Every node, subgraphs included, with the constant values in its scope (initializers, Constant nodes)."""
    scope = dict(constants)
    scope.update({t.name: t for t in graph.initializer})
    for node in graph.node:
        if node.op_type == "Constant" and node.domain in DEFAULT_DOMAINS:
            value = next((a.t for a in node.attribute if a.name == "value"), None)
            scope[node.output[0]] = value if value is not None else onnx.TensorProto()
    for node in graph.node:
        yield node, scope
        for subgraph in _subgraphs(node):
            yield from _walk(subgraph, scope)


def _tensor_types(graph: onnx.GraphProto, types: dict[str, tuple[int, int | None]]) -> None:
    """name -> (element type, rank or None), for every tensor shape inference or the graph itself types."""
    for info in (*graph.input, *graph.output, *graph.value_info):
        tensor = info.type.tensor_type
        if info.type.HasField("tensor_type") and tensor.elem_type:
            types[info.name] = (tensor.elem_type, len(tensor.shape.dim) if tensor.HasField("shape") else None)
    for initializer in graph.initializer:
        types[initializer.name] = (initializer.data_type, len(initializer.dims))
    for node in graph.node:
        if node.op_type == "Constant" and node.domain in DEFAULT_DOMAINS:
            for attribute in node.attribute:
                if attribute.name == "value":
                    types[node.output[0]] = (attribute.t.data_type, len(attribute.t.dims))
        for subgraph in _subgraphs(node):
            _tensor_types(subgraph, types)


def _attributes(node: onnx.NodeProto) -> dict[str, object]:
    values = {}
    for attribute in node.attribute:
        value = helper.get_attribute_value(attribute)
        values[attribute.name] = value.decode() if isinstance(value, bytes) else value
    return values


QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")
#: What TensorRT's Q/DQ layers quantize to (its explicit quantization; INT4 and FP4 for weights only).
QUANTIZED_TYPES = {"INT8", "FLOAT8E4M3FN", "INT4", "FLOAT4E2M1"}


def _general_type_problem(type_name: str, tensor: str, op_type: str, graph_io: set[str]) -> str | None:
    types = TABLE["data_types"]
    if type_name not in types["supported"]:
        return f"{type_name} is not a type TensorRT supports"
    if type_name in types["limited"]:
        return f"{type_name} has limited support (TensorRT casts it down to FLOAT)"
    if type_name in types["graph_io_only"] and tensor not in graph_io:
        return f"{type_name} is supported only as a network input or output"
    if type_name in types["quantized_only"] and op_type not in ("QuantizeLinear", "DequantizeLinear"):
        return f"{type_name} is supported only through quantization (QuantizeLinear / DequantizeLinear)"
    return None


def _type_problems(node: onnx.NodeProto, entry: dict | None, types: dict, graph_io: set[str], where: str) -> list[str]:
    """Element types of the node's inputs and outputs; ``entry`` None (a plugin) checks only the general list."""
    abbreviations = TABLE["type_abbreviations"]
    allowed = {abbreviations[t] for t in entry["types"]} if entry else None
    parameters = PARAMETER_INPUTS.get(node.op_type, set()) if entry else set()
    # (label, tensor, held only to the general list)
    tensors = [(f"input {i}", name, i in parameters) for i, name in enumerate(node.input) if name]
    fixed = node.op_type in FIXED_OUTPUT_TYPES
    indices = INDEX_OUTPUTS.get(node.op_type, set())
    tensors += [(f"output {i}", name, fixed or i in indices) for i, name in enumerate(node.output) if name]
    problems = []
    if node.op_type in QDQ_OPS and entry:
        # The table's type column is the data input's (X); the other side of the pair is the quantized type,
        # the scale is float. So: input 0 against the table, the quantized side against TensorRT's quantized types.
        quantized = [name for i, name in enumerate(node.input) if i == 2 and name]
        quantized += list(node.output[:1]) if node.op_type == "QuantizeLinear" else []
        for name in quantized:
            type_name = TensorProto.DataType.Name(types[name][0]) if name in types else "?"
            if type_name not in QUANTIZED_TYPES:
                problems.append(f"{where}: {name!r} is {type_name}; TensorRT quantizes to {sorted(QUANTIZED_TYPES)}")
        tensors = [t for t in tensors if t[0] == "input 0"] + [(label, name, True) for label, name, _ in tensors
                                                               if label != "input 0"]
    for label, name, is_parameter in tensors:
        if name not in types:
            problems.append(f"{where}: shape inference gives no type for {label} {name!r}")
            continue
        type_name = TensorProto.DataType.Name(types[name][0])
        general = _general_type_problem(type_name, name, node.op_type, graph_io)
        if general:
            problems.append(f"{where}: {label} {name!r}: {general}")
        elif allowed is not None and not is_parameter and type_name not in allowed:
            problems.append(f"{where}: {label} {name!r} is {type_name}; the table lists {entry['types']} "
                            f"for {node.op_type}")
    if node.op_type == "Cast" and allowed is not None:
        target = TensorProto.DataType.Name(_attributes(node).get("to", 0))
        if target not in allowed:
            problems.append(f"{where}: casts to {target}; the table lists {entry['types']} for Cast")
    return problems


def _attribute_problems(node: onnx.NodeProto, checks: dict, attributes: dict, where: str) -> list[str]:
    """The checks on the node's attributes and on how many outputs it uses."""
    problems = []
    for name, rule in checks.get("attribute_in", {}).items():
        value = attributes.get(name, rule["default"])
        if value not in rule["values"]:
            problems.append(f"{where}: {name}={value!r}; TensorRT 10.x supports {rule['values']}")
    for name in checks.get("all_ones_attributes", ()):
        if name in attributes and any(v != 1 for v in attributes[name]):
            problems.append(f"{where}: {name}={attributes[name]} must be empty or all ones")
    if "spatial_dims" in checks:
        kernel = attributes.get("kernel_shape")
        if kernel is None or len(kernel) not in checks["spatial_dims"]:
            problems.append(f"{where}: kernel_shape {kernel}: only {checks['spatial_dims']} spatial dimensions")
    used = len([o for o in node.output if o])
    if "max_outputs" in checks and used > checks["max_outputs"]:
        problems.append(f"{where}: uses {used} outputs; only the first {checks['max_outputs']} is supported")
    for name in checks.get("forbidden_attributes", ()):
        if name in attributes:
            problems.append(f"{where}: attribute {name} is unsupported")
    return problems


def _input_problems(node: onnx.NodeProto, checks: dict, attributes: dict, constants: dict[str, onnx.TensorProto],
                    types: dict, where: str) -> list[str]:
    """The checks on the node's inputs: which must be constants, and what the constants and ranks allow."""
    problems = []
    for index, name in checks.get("constant_inputs", {}).items():
        index = int(index)
        if index < len(node.input) and node.input[index] and node.input[index] not in constants:
            problems.append(f"{where}: input {name} ({node.input[index]!r}) must be an initializer or a "
                            "Constant, not a computed tensor")
    if checks.get("iota_axes_attribute") and "axes" in attributes:
        rank = types.get(node.input[0], (0, None))[1]
        if not rank or [a % rank for a in attributes["axes"]] != list(range(rank)):
            problems.append(f"{where}: axes={attributes['axes']} must be 0..rank-1 (input rank {rank})")
    if "linear_resized_dims_max" in checks and attributes.get("mode", "nearest") == "linear":
        scales = node.input[2] if len(node.input) > 2 else ""
        if scales in constants and constants[scales].dims:
            values = numpy_helper.to_array(constants[scales]).tolist()
            limit = checks["linear_resized_dims_max"]
            if any(v != 1 for v in values[:-limit]):
                problems.append(f"{where}: linear resize with scales {values} resizes more than the innermost "
                                f"{limit} dimensions")
    return problems


def _restriction_problems(node: onnx.NodeProto, checks: dict, constants: dict[str, onnx.TensorProto],
                          types: dict, where: str) -> list[str]:
    """The restrictions text, as encoded in the table's ``checks`` (legend in the JSON's ``checks_legend``)."""
    attributes = _attributes(node)
    return (_attribute_problems(node, checks, attributes, where)
            + _input_problems(node, checks, attributes, constants, types, where))


def _plugin_problems(node: onnx.NodeProto, where: str) -> list[str]:
    # A custom node is handled by a TensorRT plugin, not by a built-in importer. The parser dispatches on op_type
    # alone, whatever the domain: an op type with no built-in importer falls back to the plugin registry
    # (FallbackPluginImporter), looked up by name = op_type, plugin_version and plugin_namespace. So the node is
    # allowed only when its op type is no built-in operator (which would take it instead) and it carries
    # plugin_namespace, the namespace its plugin is registered under (cosa_edge's plugin is not in the default one).
    plugins = TABLE["plugins"]
    problems = []
    if node.op_type in TABLE["operators"]:
        problems.append(f"{where}: op type {node.op_type} in domain {node.domain!r} is a built-in ONNX operator "
                        "name; TensorRT's parser would import it as that operator, not as a plugin")
    if not _attributes(node).get(plugins["namespace_attribute"]):
        problems.append(f"{where}: custom op {node.domain}::{node.op_type} has no {plugins['namespace_attribute']} "
                        "attribute, so TensorRT's parser cannot find its plugin")
    return problems


def tensorrt_problems(model: onnx.ModelProto) -> list[str]:
    """Every way ``model`` departs from TensorRT 10.x's published ONNX operator support; empty when it conforms."""
    problems = []
    low, high = TABLE["opset"]["min"], TABLE["opset"]["max"]
    for opset in model.opset_import:
        if opset.domain in DEFAULT_DOMAINS and not low <= opset.version <= high:
            problems.append(f"opset {opset.version} is outside the parser's supported range {low}..{high}")
    inferred = onnx.shape_inference.infer_shapes(model)
    types: dict[str, tuple[int, int | None]] = {}
    _tensor_types(inferred.graph, types)
    graph_io = {v.name for v in (*inferred.graph.input, *inferred.graph.output)}
    importer_checks = TABLE["importer_source"]["checks"]
    for node, constants in _walk(inferred.graph, {}):
        where = f"{node.op_type} node {node.name or node.output[0]!r}"
        if node.domain not in DEFAULT_DOMAINS:
            problems += _plugin_problems(node, where)
            problems += _type_problems(node, None, types, graph_io, where)
            continue
        entry = TABLE["operators"].get(node.op_type)
        if entry is None:
            problems.append(f"{where}: {node.op_type} is not in TensorRT's operator table")
            continue
        if not entry["supported"]:
            problems.append(f"{where}: TensorRT 10.x's ONNX parser does not support {node.op_type}")
            continue
        problems += _type_problems(node, entry, types, graph_io, where)
        for checks in (entry.get("checks", {}), importer_checks.get(node.op_type, {})):
            problems += _restriction_problems(node, checks, constants, types, where)
    return problems


def ops_of(model: onnx.ModelProto) -> set[str]:
    found = set()
    for node, _ in _walk(model.graph, {}):
        found.add(node.op_type if node.domain in DEFAULT_DOMAINS else f"{node.domain}::{node.op_type}")
    return found


def _assert_conforms(path: Path) -> None:
    model = onnx.load(str(path))
    problems = tensorrt_problems(model)
    assert not problems, f"{path.name} ({', '.join(sorted(ops_of(model)))}):\n" + "\n".join(problems)


# ---------------------------------------------------------------------------------------------------------------
# The exports.


def _random_checkpoint(path: Path, preset: str, **changes: object) -> Path:
    config = load_preset(preset).replace(**changes)
    torch.manual_seed(0)
    save_checkpoint(path, build_model(config.model), config)
    return path


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tensorrt_ops")


@pytest.fixture(scope="module")
def cosa_checkpoint(workdir: Path) -> Path:
    # The configuration of conftest's trained_checkpoint: the edge preset at 64 px with a narrow decoder.
    return _random_checkpoint(workdir / "mtl_cosa.pt", "edge", image_size=SMALL_SIZE, decoder_channels=TINY_DECODER)


@pytest.fixture(scope="module")
def standard_export(cosa_checkpoint: Path, workdir: Path) -> Path:
    export_onnx(cosa_checkpoint, workdir / "mtl_cosa.onnx")
    return workdir / "mtl_cosa.onnx"


@pytest.fixture(scope="module")
def fp16_export(standard_export: Path, workdir: Path) -> Path:
    _convert_to_fp16()(standard_export, workdir / "mtl_cosa_fp16.onnx")
    return workdir / "mtl_cosa_fp16.onnx"


@pytest.fixture(scope="module")
def plugin_export(cosa_checkpoint: Path, workdir: Path) -> Path:
    export_onnx(cosa_checkpoint, workdir / "mtl_cosa_plugin.onnx", cosa_op="plugin")
    return workdir / "mtl_cosa_plugin.onnx"


# ---------------------------------------------------------------------------------------------------------------
# Tests.


def test_the_table_names_its_source_and_covers_the_default_opset() -> None:
    source = TABLE["source"]
    assert source["repository"] == "https://github.com/onnx/onnx-tensorrt" and source["path"] == "docs/operators.md"
    assert len(source["commit"]) == 40 and source["ref"] and source["tensorrt_version"].startswith("10.")
    assert TABLE["opset"]["min"] <= DEFAULT_OPSET <= TABLE["opset"]["max"]
    for name, entry in TABLE["operators"].items():
        assert entry["supported"] == bool(entry.get("types")), name
        assert set(entry.get("types", ())) <= set(TABLE["type_abbreviations"]), name


@pytest.mark.parametrize("export", ["standard_export", "fp16_export", "plugin_export"])
def test_mtl_cosa_exports_use_only_what_tensorrt_10_supports(export: str, request: pytest.FixtureRequest) -> None:
    path = request.getfixturevalue(export)
    model = onnx.load(str(path))
    assert model.opset_import[0].version == DEFAULT_OPSET
    if export == "plugin_export":
        plugin_nodes = [n for n, _ in _walk(model.graph, {}) if n.op_type == PLUGIN_NAME]
        assert [n.domain for n in plugin_nodes] == [PLUGIN_DOMAIN]  # the check below must see the plugin node
    _assert_conforms(path)


def test_the_tensorrt_int8_graph_uses_only_what_tensorrt_10_supports(standard_export: Path, workdir: Path) -> None:
    """The symmetric QDQ graph that `build-engine --target tensorrt --precision int8` builds from (engines/int8.py):
    its QuantizeLinear/DequantizeLinear carry INT8 only (no int32 biases, which TensorRT cannot dequantize)."""
    pytest.importorskip("onnxruntime")
    from cosa_edge.data.phantom import make_phantom_dataset
    from cosa_edge.engines.int8 import SCHEMES, calibration_from_samples, quantize_int8

    calibration = calibration_from_samples(make_phantom_dataset(8, seed=3, size=(SMALL_SIZE, SMALL_SIZE)),
                                           SMALL_SIZE, 8, "phantom:8")
    int8 = workdir / "mtl_cosa_int8_tensorrt.onnx"
    quantize_int8(standard_export, int8, calibration, SCHEMES["tensorrt"])
    model = onnx.load(str(int8))
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops_of(model)
    _assert_conforms(int8)


def _assert_export_and_fp16_conform(checkpoint: Path) -> None:
    exported = checkpoint.with_suffix(".onnx")
    export_onnx(checkpoint, exported)
    checkpoint.unlink()
    _assert_conforms(exported)
    _convert_to_fp16()(exported, exported.with_name(f"{exported.stem}_fp16.onnx"))
    _assert_conforms(exported.with_name(f"{exported.stem}_fp16.onnx"))


@pytest.mark.parametrize("architecture", [
    pytest.param(a, marks=pytest.mark.slow) if a in SLOW_ARCHITECTURES else a
    for a in sorted(ARCHITECTURES) if a != "mtl_cosa"
])
def test_every_architecture_exports_only_what_tensorrt_10_supports(architecture: str, workdir: Path) -> None:
    size = ARCHITECTURE_SIZES.get(architecture, SMALL_SIZE)
    _assert_export_and_fp16_conform(_random_checkpoint(
        workdir / f"{architecture}.pt", "edge", architecture=architecture, image_size=size,
        decoder_channels=TINY_DECODER))


def test_bottleneck_encoders_export_only_what_tensorrt_10_supports(workdir: Path) -> None:
    """ResNet-50 and -101 build from bottleneck blocks (ResNet-18 and -34 from basic blocks): the paper preset's
    block type, at half the size of its ResNet-101, for the default run."""
    _assert_export_and_fp16_conform(_random_checkpoint(
        workdir / "resnet50.pt", "edge", encoder="resnet50", image_size=SMALL_SIZE, decoder_channels=TINY_DECODER))


def test_efficientnet_lite_exports_only_what_tensorrt_10_supports(workdir: Path) -> None:
    """Depthwise convolutions, ReLU6 as Clip, and TensorFlow's asymmetric "same" padding inside the Conv pads."""
    pytest.importorskip("timm")
    _assert_export_and_fp16_conform(_random_checkpoint(
        workdir / "lite0.pt", "edge", encoder="efficientnet_lite0", image_size=SMALL_SIZE,
        decoder_channels=TINY_DECODER))
    plugin = workdir / "lite0_plugin.onnx"  # and the plugin path
    export_onnx(_random_checkpoint(workdir / "lite0p.pt", "edge", encoder="efficientnet_lite0", image_size=SMALL_SIZE,
                                   decoder_channels=TINY_DECODER), plugin, cosa_op="plugin")
    _assert_conforms(plugin)


@pytest.mark.slow
def test_the_paper_preset_exports_only_what_tensorrt_10_supports(workdir: Path) -> None:
    """The paper preset as it is (MTL-COSA, ResNet-101, the paper's decoder) but at 64 px: ~30 s."""
    _assert_export_and_fp16_conform(_random_checkpoint(workdir / "paper.pt", "paper", image_size=SMALL_SIZE))


# The check itself: tiny models that break one rule each are refused, for that rule.

def _x(elem_type: int = TensorProto.FLOAT, name: str = "x") -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem_type, [1, 1, 4, 4])


def _model(nodes: list[onnx.NodeProto], outputs: list[onnx.ValueInfoProto] | None = None, *,
           inputs: list[onnx.ValueInfoProto] | None = None, initializers: tuple = (), opset: int = DEFAULT_OPSET,
           custom_domain: bool = False) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "case", inputs or [_x()], outputs or [helper.make_tensor_value_info(
        "y", TensorProto.FLOAT, None)], initializer=list(initializers))
    opsets = [helper.make_opsetid("", opset)] + ([helper.make_opsetid(PLUGIN_DOMAIN, 1)] if custom_domain else [])
    return helper.make_model(graph, opset_imports=opsets)


SCALES = helper.make_tensor("scales", TensorProto.FLOAT, [4], [1.0, 1.0, 2.0, 2.0])


def _resize(**attributes: object) -> onnx.ModelProto:
    return _model([helper.make_node("Resize", ["x", "", "scales"], ["y"], **attributes)], initializers=(SCALES,))


def _if_with(node: onnx.NodeProto) -> onnx.ModelProto:
    branch = helper.make_graph([node], "then", [], [helper.make_tensor_value_info("t", TensorProto.FLOAT, None)])
    other = helper.make_graph([helper.make_node("Identity", ["x"], ["e"])], "else", [],
                              [helper.make_tensor_value_info("e", TensorProto.FLOAT, None)])
    condition = helper.make_tensor("cond", TensorProto.BOOL, [], [True])
    return _model([helper.make_node("If", ["cond"], ["y"], then_branch=branch, else_branch=other)],
                  initializers=(condition,))


REFUSED = {
    "an operator the table marks unsupported": (
        _model([helper.make_node("Unique", ["x"], ["y"])]), "does not support Unique"),
    "an unsupported operator inside an If branch": (
        _if_with(helper.make_node("Unique", ["x"], ["t"])), "does not support Unique"),
    "a Resize with cubic interpolation": (
        _resize(mode="cubic"), "mode='cubic'"),
    "a Resize with tf_crop_and_resize coordinates": (
        _resize(mode="linear", coordinate_transformation_mode="tf_crop_and_resize"),
        "coordinate_transformation_mode='tf_crop_and_resize'"),
    "a Cast to DOUBLE": (
        _model([helper.make_node("Cast", ["x"], ["y"], to=TensorProto.DOUBLE)],
               [helper.make_tensor_value_info("y", TensorProto.DOUBLE, None)]), "DOUBLE"),
    "a comparison on DOUBLE": (
        _model([helper.make_node("Greater", ["x", "x"], ["y"])], [helper.make_tensor_value_info(
            "y", TensorProto.BOOL, None)], inputs=[_x(TensorProto.DOUBLE)]), "DOUBLE"),
    "a Slice whose axes are computed": (
        _model([helper.make_node("Slice", ["x", "starts", "ends", "axes"], ["y"])],
               inputs=[_x(), helper.make_tensor_value_info("axes", TensorProto.INT64, [1])],
               initializers=(helper.make_tensor("starts", TensorProto.INT64, [1], [0]),
                             helper.make_tensor("ends", TensorProto.INT64, [1], [2]))),
        "input axes ('axes') must be an initializer"),
    "a MaxPool that uses its Indices output": (
        _model([helper.make_node("MaxPool", ["x"], ["y", "i"], kernel_shape=[2, 2])],
               [helper.make_tensor_value_info("y", TensorProto.FLOAT, None),
                helper.make_tensor_value_info("i", TensorProto.INT64, None)]), "only the first 1"),
    "an opset newer than the parser's": (
        _model([helper.make_node("Relu", ["x"], ["y"])], opset=TABLE["opset"]["max"] + 1), "opset"),
    "a custom node without plugin_namespace": (
        _model([helper.make_node(PLUGIN_NAME, ["x"], ["y"], domain=PLUGIN_DOMAIN, grid_h=2, grid_w=2)],
               custom_domain=True), "no plugin_namespace"),
    "a custom node named like a built-in operator": (
        _model([helper.make_node("Relu", ["x"], ["y"], domain=PLUGIN_DOMAIN, plugin_namespace=PLUGIN_DOMAIN)],
               custom_domain=True), "built-in ONNX operator name"),
}


@pytest.mark.parametrize("case", REFUSED)
def test_the_check_refuses_what_tensorrt_10_does_not_support(case: str) -> None:
    model, message = REFUSED[case]
    problems = tensorrt_problems(model)
    assert any(message in p for p in problems), problems


def test_the_check_accepts_a_conforming_model_of_the_same_shapes() -> None:
    """The refused cases above fail for the rule they break: their conforming twins pass."""
    model = _model([
        helper.make_node("Resize", ["x", "", "scales"], ["r"], mode="linear",
                         coordinate_transformation_mode="half_pixel"),
        helper.make_node("Slice", ["r", "starts", "ends", "axes"], ["s"]),
        helper.make_node("MaxPool", ["s"], ["p"], kernel_shape=[2, 2]),
        helper.make_node("Greater", ["p", "p"], ["g"]),
        helper.make_node("Cast", ["g"], ["c"], to=TensorProto.FLOAT),
        helper.make_node(PLUGIN_NAME, ["c"], ["y"], domain=PLUGIN_DOMAIN, grid_h=2, grid_w=2,
                         plugin_namespace=PLUGIN_DOMAIN, aot=1),
    ], initializers=(SCALES, helper.make_tensor("starts", TensorProto.INT64, [1], [0]),
                     helper.make_tensor("ends", TensorProto.INT64, [1], [4]),
                     helper.make_tensor("axes", TensorProto.INT64, [1], [2])), custom_domain=True)
    assert tensorrt_problems(model) == []
    assert tensorrt_problems(_if_with(helper.make_node("Relu", ["x"], ["t"]))) == []
