"""The TensorRT plugin and runtime code against TensorRT's real Python API, without a GPU.

Real: ``cosa_edge.kernels.trt_plugin`` imported and registered through TensorRT's own
``tensorrt.plugin`` package (pure Python, from NVIDIA's wheel) on TensorRT's own lean runtime
bindings (the C++ plugin registry, plugin creators, PluginField and DataType); the plugin created
through the registry as the ONNX parser creates it; the plugin's shape, type, autotune and
ahead-of-time functions run by the plugin object TensorRT built; the PTX compiled by nvcc; the
runtime classes (Runtime, ICudaEngine, IExecutionContext) whose methods tensorrt_engine.py calls.

Stand-ins (tests/trt_stand_in.py says why): the ``tensorrt`` module name itself (the lean runtime
under that name, for these tests only), ``TensorFormat``, ``ITensor``, and the expression builder
(TensorRT's builder makes the real one), which here evaluates shapes as known integers.

Not covered, because the lean wheels lack it or it needs a GPU: the builder, network definition,
ONNX parser and builder config calls of engines/tensorrt_build.py; running an engine; launching the kernel
(scripts/gpu_check.py does that on a GPU, through the driver API exactly as this launch describes).
"""

from __future__ import annotations

import ast
import re
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from cosa_edge.errors import CosaEdgeError
from cosa_edge.kernels import trt_compat
from cosa_edge.kernels.cuda import BLOCK, KERNEL_NAMES
from tests.trt_stand_in import ConstantExprBuilder, lean_available, stand_in_tensorrt

REPO = Path(__file__).resolve().parents[1]

_missing = lean_available()
pytestmark = pytest.mark.skipif(_missing is not None, reason=_missing or "")


@pytest.fixture(scope="module")
def trt_api() -> Iterator[tuple[ModuleType, ModuleType, ModuleType]]:
    """(tensorrt, tensorrt.plugin, cosa_edge.kernels.trt_plugin), imported against the real packages."""
    with stand_in_tensorrt() as trt:
        import tensorrt.plugin as trtp

        sys.modules.pop("cosa_edge.kernels.trt_plugin", None)
        from cosa_edge.kernels import trt_plugin

        yield trt, trtp, trt_plugin
        sys.modules.pop("cosa_edge.kernels.trt_plugin", None)


def _fields(trt, **values: int):  # noqa: ANN001, ANN202
    # The parser passes an ONNX INT attribute as one int32 field (attributes it strips are not passed).
    return trt.PluginFieldCollection([trt.PluginField(name, np.array([value], np.int32), trt.PluginFieldType.INT32)
                                      for name, value in values.items()])


def _create(trt, request, **values: int):  # noqa: ANN001, ANN202
    problem = trt_compat.plugin_problem(trt.__version__, np.__version__, has_plugin_module=True)
    if problem:  # test_the_numpy_rule_holds_for_the_installed_tensorrt checks that it really fails
        pytest.skip(f"this TensorRT and numpy cannot create plugins: {problem}")
    creator = trt.get_plugin_registry().get_creator("CosaRegionMasks", "1", "cosa_edge")
    return creator.create_plugin("CosaRegionMasks", "cosa_edge", _fields(trt, **values), trt.TensorRTPhase.BUILD,
                                 request)


def _scores_desc(trtp, trt, shape: tuple[int, ...], dtype):  # noqa: ANN001, ANN202
    """A TensorDesc for the plugin's input with known dimensions, as the builder's shape pass makes it."""
    desc = trtp.TensorDesc()
    desc.dtype = dtype
    desc.shape_expr = trtp.ShapeExprs(len(shape))
    for index, size in enumerate(shape):
        desc.shape_expr[index] = trtp.ShapeExpr(size)
    desc._immutable = True
    return desc


def _value(expression) -> int:  # noqa: ANN001
    # The expression's own value. SymInt32.constant_value() itself fails in TensorRT 11.4
    # (is_constant reads an attribute only ShapeExpr sets), so the underlying expression is read.
    return expression._expr.get_constant_value()


@pytest.fixture
def expressions(trt_api):  # noqa: ANN001, ANN201
    """Shape arithmetic in effect, as inside TensorRT's getOutputShapes/getLaunchParams calls."""
    trt, trtp, _ = trt_api
    from tensorrt.plugin._tensor import SymIntExpr

    SymIntExpr._exprBuilder = ConstantExprBuilder(trt)
    yield
    SymIntExpr._exprBuilder = None


def test_the_plugin_registers_with_the_real_plugin_package(trt_api) -> None:  # noqa: ANN001
    trt, _, plugin = trt_api
    creator = trt.get_plugin_registry().get_creator("CosaRegionMasks", "1", "cosa_edge")
    assert creator is not None and creator.name == "CosaRegionMasks" and creator.plugin_namespace == "cosa_edge"
    assert [f.name for f in creator.field_names] == ["grid_h", "grid_w"]
    assert plugin.PLUGIN_ID == "cosa_edge::CosaRegionMasks"
    assert plugin.HAS_AOT == trt_compat.has_aot(trt.__version__)


def test_postponed_annotations_are_what_broke_the_import() -> None:
    """Defect 1: the plugin decorators need live classes; this module must never postpone annotations."""
    source = (REPO / "cosa_edge/kernels/trt_plugin.py").read_text()
    tree = ast.parse(source)
    futures = [a.name for node in tree.body if isinstance(node, ast.ImportFrom) and node.module == "__future__"
               for a in node.names]
    assert "annotations" not in futures
    aot = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "region_masks_aot")
    assert "KernelLaunchParams" in ast.unparse(aot.returns) and "SymIntExprs" in ast.unparse(aot.returns)


def test_the_numpy_rule_holds_for_the_installed_tensorrt(trt_api) -> None:  # noqa: ANN001
    """Defect 4: trt_compat's rule (TensorRT < 11.2 with numpy >= 2.4 cannot create plugins) is what happens."""
    trt, _, _ = trt_api
    creator = trt.get_plugin_registry().get_creator("CosaRegionMasks", "1", "cosa_edge")
    create = lambda: creator.create_plugin("CosaRegionMasks", "cosa_edge", _fields(trt, grid_h=8, grid_w=8),  # noqa: E731
                                           trt.TensorRTPhase.BUILD, trt.QuickPluginCreationRequest.STRICT_JIT)
    if trt_compat.plugin_problem(trt.__version__, np.__version__, has_plugin_module=True):
        with pytest.raises(TypeError, match="0-dimensional"):
            create()
    else:
        assert create().attrs == {"grid_h": 8, "grid_w": 8}


def test_creation_as_the_onnx_parser_asks_for_it(trt_api) -> None:  # noqa: ANN001
    trt, _, plugin = trt_api
    aot = _create(trt, trt.QuickPluginCreationRequest.STRICT_AOT, grid_h=8, grid_w=8)
    assert isinstance(aot, trt.IPluginV3QuickAOTBuild)
    assert aot.attrs == {"grid_h": 8, "grid_w": 8} and all(type(v) is int for v in aot.attrs.values())
    jit = _create(trt, trt.QuickPluginCreationRequest.STRICT_JIT, grid_h=8, grid_w=8)
    assert isinstance(jit, trt.IPluginV3QuickRuntime) and jit.impl_function is plugin.region_masks_python
    # The node's own plugin_namespace and aot attributes are not plugin fields: the parser strips them.
    creator = trt.get_plugin_registry().get_creator("CosaRegionMasks", "1", "cosa_edge")
    with pytest.raises(AssertionError, match="Unexpected attribute"):
        creator.create_plugin("CosaRegionMasks", "cosa_edge", _fields(trt, grid_h=8, grid_w=8, aot=1),
                              trt.TensorRTPhase.BUILD, trt.QuickPluginCreationRequest.STRICT_AOT)


@pytest.mark.parametrize("input_type", ["FLOAT", "HALF"])
def test_output_type_is_fp32_for_either_input(trt_api, input_type: str) -> None:  # noqa: ANN001
    trt, _, _ = trt_api
    created = _create(trt, trt.QuickPluginCreationRequest.STRICT_AOT, grid_h=8, grid_w=8)
    assert created.get_output_data_types([getattr(trt.DataType, input_type)], [4]) == [trt.DataType.FLOAT]


@pytest.mark.usefixtures("expressions")
def test_output_shape_expression(trt_api) -> None:  # noqa: ANN001
    trt, trtp, _ = trt_api
    created = _create(trt, trt.QuickPluginCreationRequest.STRICT_AOT, grid_h=12, grid_w=20)
    out = created.register_function(_scores_desc(trtp, trt, (5, 2, 96, 160), trt.float32), **created.attrs)
    assert [e.constant_value() for e in out.shape_expr] == [5, 3, 12, 20]
    assert out.dtype == trt.float32


@pytest.mark.usefixtures("expressions")
@pytest.mark.parametrize(("shape", "grid", "message"), [((1, 2, 256, 256), (2, 2), "exceed the kernel's 64-pixel tile"),
                                                         ((1, 2, 100, 100), (8, 8), "does not tile")])
def test_shapes_the_kernel_would_get_wrong_fail_the_build(trt_api, shape, grid, message: str) -> None:  # noqa: ANN001
    trt, trtp, _ = trt_api
    created = _create(trt, trt.QuickPluginCreationRequest.STRICT_AOT, grid_h=grid[0], grid_w=grid[1])
    with pytest.raises(CosaEdgeError, match=message):
        created.register_function(_scores_desc(trtp, trt, shape, trt.float32), **created.attrs)


def test_placeholder_shapes_pass_through(trt_api) -> None:  # noqa: ANN001
    """The builder's first pass (output types) hands over fake shapes: nothing to check yet."""
    trt, _, _ = trt_api
    created = _create(trt, trt.QuickPluginCreationRequest.STRICT_AOT, grid_h=2, grid_w=2)
    assert created.get_output_data_types([trt.DataType.FLOAT], [4]) == [trt.DataType.FLOAT]


def test_autotune_offers_fp32_or_fp16_in_and_fp32_out(trt_api) -> None:  # noqa: ANN001
    trt, trtp, _ = trt_api
    created = _create(trt, trt.QuickPluginCreationRequest.STRICT_AOT, grid_h=8, grid_w=8)
    scores = _scores_desc(trtp, trt, (1, 2, 256, 256), trt.float32)
    combinations = [c for comb in created.autotune_function(scores, 8, 8, ()) for c in comb._get_combinations()]
    offered = {(tuple(t.name for t in c.types), tuple(f.name for f in c.layouts)) for c in combinations}
    assert offered == {(("FLOAT", "FLOAT"), ("LINEAR", "LINEAR")), (("HALF", "FLOAT"), ("LINEAR", "LINEAR"))}
    assert len(combinations) == 2


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not installed (the AOT path compiles PTX)")
@pytest.mark.usefixtures("expressions")
@pytest.mark.parametrize(("dtype", "numpy_dtype"), [("float32", np.float32), ("float16", np.float16)])
def test_ahead_of_time_kernel_and_launch(trt_api, dtype: str, numpy_dtype: type) -> None:  # noqa: ANN001
    trt, trtp, plugin = trt_api
    if not plugin.HAS_AOT:
        pytest.skip(f"TensorRT {trt.__version__} has no tensorrt.plugin.aot_impl (10.9+)")
    created = _create(trt, trt.QuickPluginCreationRequest.STRICT_AOT, grid_h=12, grid_w=20)
    scores = _scores_desc(trtp, trt, (3, 2, 96, 160), getattr(trt, dtype))
    outputs = (created.register_function(scores, **created.attrs),)
    name, ptx, launch, extra = created.aot_impl_function(scores, 12, 20, outputs, 0)
    kernel = KERNEL_NAMES[np.dtype(numpy_dtype)]
    assert name == kernel.encode()
    text = ptx.decode()
    assert f".entry {kernel}(" in text and ".target sm_75" in text
    # The kernel's parameter list: scores pointer, four int32 scalars, output pointer.
    params = re.search(rf"\.entry {kernel}\((.*?)\)", text, re.S).group(1)
    assert [p.split()[1] for p in params.split(",")] == [".u64", ".u32", ".u32", ".u32", ".u32", ".u64"]
    assert [_value(getattr(launch, f"grid_{a}")) for a in "xyz"] == [20, 12, 3]  # (w, h, N)
    assert tuple(_value(getattr(launch, f"block_{a}")) for a in "xyz") == BLOCK
    assert _value(launch.shared_mem) == 0
    assert [_value(e) for e in extra] == [96, 160, 12, 20]  # H, W, h, w in the kernel's order
    assert all(isinstance(e, trtp.SymInt32) for e in extra)


def _signatures(member) -> list[tuple[int, int]]:  # noqa: ANN001
    """(required, total) positional parameters, self excluded, of each overload in a pybind11 docstring."""
    found = []
    for line in (member.__doc__ or "").splitlines():
        match = re.match(r"\s*(?:\d+\.\s*)?\w+\((.*)\)\s*->", line)
        if not match:
            continue
        depth, parts, current = 0, [], ""
        for char in match.group(1):
            depth += char in "([" or -(char in ")]")
            if char == "," and depth == 0:
                parts.append(current)
                current = ""
            else:
                current += char
        parts = [p.strip() for p in [*parts, current] if p.strip()][1:]  # drop self
        found.append((sum("=" not in p for p in parts), len(parts)))
    return found


# What tensorrt_engine.py calls each TensorRT object it holds, by the name it holds it under.
RECEIVERS = {"engine": "ICudaEngine", "self.engine": "ICudaEngine", "context": "IExecutionContext",
             "self.context": "IExecutionContext", "runtime": "Runtime", "self.runtime": "Runtime"}


def _runtime_uses() -> list[tuple[str, str, int | None, int]]:
    """(class, member, positional argument count or None for an attribute read, line) in tensorrt_engine.py."""
    tree = ast.parse((REPO / "cosa_edge/engines/tensorrt_engine.py").read_text())
    called = {id(n.func): len(n.args) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    uses = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            receiver = ast.unparse(node.value)
            if receiver in RECEIVERS:
                uses.append((RECEIVERS[receiver], node.attr, called.get(id(node)), node.lineno))
            elif receiver.startswith("trt") and receiver.split(".")[0] in ("trt", "self._trt"):
                uses.append(("module:" + receiver, node.attr, called.get(id(node)), node.lineno))
            elif receiver == "self._trt":
                uses.append(("module:trt", node.attr, called.get(id(node)), node.lineno))
    return uses


def _use_problem(trt: ModuleType, owner: str, member: str, args: int | None, line: int) -> str | None:
    """What is wrong with one use: a member that does not exist, or a call that cannot match its signature."""
    if owner.startswith("module:"):
        target = trt
        for part in owner.split(":")[1].split(".")[1:]:
            target = getattr(target, part)
        return None if hasattr(target, member) else f"line {line}: {owner[7:]}.{member} does not exist"
    attribute = getattr(getattr(trt, owner), member, None)
    if attribute is None:
        return f"line {line}: {owner}.{member} does not exist"
    if args is None:
        return None
    if isinstance(attribute, property):
        return f"line {line}: {owner}.{member} is a property, not a method"
    if not any(required <= args <= total for required, total in _signatures(attribute)):
        return f"line {line}: {owner}.{member} takes {_signatures(attribute)} arguments, not {args}"
    return None


def _methods_read_as_attributes(trt: ModuleType, uses: list[tuple[str, str, int | None, int]]) -> list[str]:
    """Attributes read without a call must not be methods (unless the engine also calls them somewhere)."""
    problems = []
    for owner, member, args, line in uses:
        attribute = getattr(getattr(trt, owner), member, None) if not owner.startswith("module:") else None
        if args is None and attribute is not None and callable(attribute) and not isinstance(attribute, property):
            if not any(a is not None for o, m, a, _ in uses if (o, m) == (owner, member)):
                problems.append(f"line {line}: {owner}.{member} is a method but is read as an attribute")
    return problems


def test_every_runtime_call_of_the_engine_exists_with_that_many_arguments() -> None:
    with stand_in_tensorrt() as trt:
        uses = _runtime_uses()
        assert {u[0] for u in uses} >= {"ICudaEngine", "IExecutionContext", "Runtime"}, uses
        problems = [problem for use in uses if (problem := _use_problem(trt, *use)) is not None]
        problems += _methods_read_as_attributes(trt, uses)
        assert not problems, "\n".join(problems)
        # The members the engine reads as plain attributes really are properties.
        assert isinstance(trt.ICudaEngine.num_io_tensors, property)
        assert trt.nptype(trt.float16) is np.float16 and trt.nptype(trt.float32) is np.float32


def test_the_runtime_call_check_can_fail() -> None:
    with stand_in_tensorrt() as trt:
        assert not any(r <= 2 <= t for r, t in _signatures(trt.IExecutionContext.execute_async_v3))
        assert any(r <= 1 <= t for r, t in _signatures(trt.IExecutionContext.execute_async_v3))
        assert not hasattr(trt.IExecutionContext, "execute_async_v2")  # gone since TensorRT 10
