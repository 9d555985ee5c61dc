"""TensorFlow's "same" padding, fixed at the export's input size and folded into each convolution's own pads.

timm's ``tf_efficientnet_lite*`` pad their strided convolutions as TensorFlow does, asymmetrically and computed
from the input's size on every call (``Conv2dSame``). Exported as it is, each such convolution brings a chain of
Shape, Gather, Ceil and Sub nodes and a Pad. The export's spatial size is fixed (only the batch is dynamic), so
the padding is a constant: :func:`static_same_padding` swaps each ``Conv2dSame`` for the same convolution after
a constant zero pad while the model is traced, exported as one Conv node with the pad in its ``pads``
attribute (ONNX's Conv takes asymmetric pads; PyTorch's cannot): one Conv per convolution, what every runtime
fuses and what INT8 quantization sees as a plain Conv.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


class _PaddedConv(torch.autograd.Function):
    """A convolution after a constant zero pad; exported as one ONNX Conv whose ``pads`` hold the pad."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                pads: tuple[int, int, int, int], kernel: tuple[int, int], stride: tuple[int, int],
                dilation: tuple[int, int], groups: int) -> torch.Tensor:
        left, right, top, bottom = pads
        return F.conv2d(F.pad(x, (left, right, top, bottom)), weight, bias, stride, 0, dilation, groups)

    @staticmethod
    def symbolic(g: Any, x: torch.Value, weight: torch.Value, bias: torch.Value | None,
                 pads: tuple[int, int, int, int], kernel: tuple[int, int], stride: tuple[int, int],
                 dilation: tuple[int, int], groups: int) -> torch.Value:
        left, right, top, bottom = pads
        inputs = [x, weight] + ([bias] if bias is not None and not bias.node().mustBeNone() else [])
        return g.op("Conv", *inputs, pads_i=[top, left, bottom, right], kernel_shape_i=list(kernel),
                    strides_i=list(stride), dilations_i=list(dilation), group_i=groups)


class _ConstantPadConv(nn.Module):
    """``conv`` (with no padding of its own) after a constant zero pad of (left, right, top, bottom)."""

    def __init__(self, conv: nn.Conv2d, pads: tuple[int, int, int, int]) -> None:
        super().__init__()
        self.conv, self.pads = conv, pads

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv = self.conv
        return _PaddedConv.apply(x, conv.weight, conv.bias, self.pads, tuple(conv.kernel_size), tuple(conv.stride),
                                 tuple(conv.dilation), conv.groups)


def _same_pads(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    total = max((-(-size // stride) - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2  # TensorFlow puts the odd pixel after


def _is_dynamic_same(module: nn.Module) -> bool:
    return type(module).__name__ == "Conv2dSame" and isinstance(module, nn.Conv2d)


@contextlib.contextmanager
def static_same_padding(model: nn.Module, example: torch.Tensor) -> Iterator[int]:
    """Within the block, every ``Conv2dSame`` of ``model`` pads by constants worked out for ``example``'s size.

    Yields how many were swapped; the model has its own modules back afterwards.
    """
    sizes: dict[str, tuple[int, int]] = {}
    hooks = [module.register_forward_pre_hook(lambda m, args, name=name: sizes.__setitem__(name, args[0].shape[-2:]))
             for name, module in model.named_modules() if _is_dynamic_same(module)]
    try:
        with torch.no_grad():
            model(example)
    finally:
        for hook in hooks:
            hook.remove()
    swapped: list[tuple[nn.Module, str, nn.Module]] = []
    for name, (height, width) in sizes.items():
        parent_name, _, attribute = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        conv = getattr(parent, attribute)
        top, bottom = _same_pads(int(height), conv.kernel_size[0], conv.stride[0], conv.dilation[0])
        left, right = _same_pads(int(width), conv.kernel_size[1], conv.stride[1], conv.dilation[1])
        setattr(parent, attribute, _ConstantPadConv(conv, (left, right, top, bottom)))
        swapped.append((parent, attribute, conv))
    try:
        yield len(swapped)
    finally:
        for parent, attribute, conv in swapped:
            setattr(parent, attribute, conv)
