"""A ``tensorrt`` module for tests, made of TensorRT's real lean runtime and its real plugin package.

What is real: the ``tensorrt_lean_bindings`` C++ extension from NVIDIA's PyPI wheel (plugin
registry, plugin creators and plugin base classes, DataType, DimensionOperation, PluginField,
KernelLaunchParams, Runtime, ICudaEngine, IExecutionContext, ...) and the pure-Python
``tensorrt.plugin`` package shipped inside that wheel, which is the same code the full TensorRT
package ships as ``tensorrt/plugin``. Installed by the ``trt-api`` extra.

What stands in, because the lean runtime lacks it (it has no builder, network or ONNX parser):

* ``TensorFormat``: an IntEnum with TensorRT's values. The lean bindings do not register the
  enum, though ``tensorrt.plugin`` names ``trt.TensorFormat.LINEAR`` when it parses format strings;
* ``ITensor``: an empty class; ``tensorrt.plugin`` uses it only in the network-building helper
  ``trtp.op``, which needs a network and is not exercised;
* :class:`ConstantExprBuilder`: TensorRT's IExprBuilder, which only the builder creates; it
  evaluates shape arithmetic on known integers so that a plugin's shape and launch expressions can
  be checked as numbers.

The module is put in ``sys.modules`` only inside :func:`stand_in_tensorrt` and removed after, so
``import tensorrt`` elsewhere in the test session still means the full TensorRT, or nothing.
"""

from __future__ import annotations

import contextlib
import enum
import importlib
import importlib.util
import os
import sys
import types
from collections.abc import Iterator
from typing import Any

LEAN_PACKAGE = "tensorrt_lean_bindings"


class TensorFormat(enum.IntEnum):
    """nvinfer1::TensorFormat's values (NvInferRuntimeBase.h), for the parts of tensorrt.plugin that name them."""

    LINEAR = 0
    CHW2 = 1
    HWC8 = 2
    CHW4 = 3
    CHW16 = 4
    CHW32 = 5
    DHWC8 = 6
    CDHW32 = 7
    HWC = 8
    DLA_LINEAR = 9
    DLA_HWC4 = 10
    HWC16 = 11
    DHWC = 12


class ITensor:
    """Placeholder: network tensors exist only in the full TensorRT."""


def lean_available() -> str | None:
    """None when the lean runtime can be imported, else why not (for a skip reason)."""
    if importlib.util.find_spec(LEAN_PACKAGE) is None:
        return ("TensorRT's lean runtime bindings are not installed: pip install -e '.[trt-api]' "
                "(tensorrt-lean-cu13-bindings and tensorrt-lean-cu13-libs)")
    try:
        importlib.import_module(LEAN_PACKAGE)
    except Exception as exc:  # a wheel for another platform or a missing libs wheel
        return f"TensorRT's lean runtime bindings do not import here: {exc}"
    return None


@contextlib.contextmanager
def stand_in_tensorrt() -> Iterator[types.ModuleType]:
    """``tensorrt`` (and ``tensorrt.plugin``) importable for the duration of the block."""
    lean = importlib.import_module(LEAN_PACKAGE)
    saved = {name: module for name, module in sys.modules.items()
             if name == "tensorrt" or name.startswith("tensorrt.")}
    module = types.ModuleType("tensorrt", "stand-in: TensorRT's lean runtime under the name tensorrt (tests only)")
    module.__dict__.update({k: v for k, v in vars(lean).items() if not k.startswith("__")})
    module.__version__ = lean.__version__
    module.__path__ = [os.path.dirname(lean.__file__)]  # so `tensorrt.plugin` is the wheel's own plugin package
    module.TensorFormat = TensorFormat
    module.ITensor = ITensor
    for name in saved:
        del sys.modules[name]
    sys.modules["tensorrt"] = module
    try:
        yield module
    finally:
        for name in [n for n in sys.modules if n == "tensorrt" or n.startswith("tensorrt.")]:
            del sys.modules[name]
        sys.modules.update(saved)


class ConstantDim:
    """An IDimensionExpr whose value is known: what TensorRT's builder gives for a fixed dimension."""

    def __init__(self, value: int) -> None:
        self.value = int(value)

    def is_constant(self) -> bool:
        return True

    def get_constant_value(self) -> int:
        return self.value

    def is_size_tensor(self) -> bool:
        return False


class ConstantExprBuilder:
    """Stand-in for TensorRT's IExprBuilder over known integers (IExprBuilder::operation's semantics)."""

    def __init__(self, trt: Any) -> None:
        op = trt.DimensionOperation
        self._ops = {
            op.SUM: lambda a, b: a + b, op.PROD: lambda a, b: a * b, op.MAX: max, op.MIN: min,
            op.SUB: lambda a, b: a - b, op.EQUAL: lambda a, b: int(a == b), op.LESS: lambda a, b: int(a < b),
            op.FLOOR_DIV: lambda a, b: a // b, op.CEIL_DIV: lambda a, b: -(-a // b),
        }

    def constant(self, value: int) -> ConstantDim:
        return ConstantDim(value)

    def operation(self, op: Any, first: ConstantDim, second: ConstantDim) -> ConstantDim:
        return ConstantDim(self._ops[op](first.value, second.value))
