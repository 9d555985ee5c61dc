"""Checkpoint -> ONNX with the engine contract of :mod:`cosa_edge.contract`.

The exported graph takes the resized grey frame (0..255) and returns
probabilities, so every runtime gets the same, ready-to-use outputs and no
caller re-implements normalisation or softmax.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .. import __version__
from .._optional import require
from ..contract import INPUT_NAME, ModelMetadata
from ..engines.artifact import SerializedModel
from ..errors import CosaEdgeError
from ..fileio import atomic_write_text
from ..model.cosa import COSA
from ..model.regions import region_maps
from ..train.checkpoint import load_verified_model
from .deploy_module import DeployModule, deploy_metadata
from .model_card import build_model_card, card_path, read_cv_results
from .same_padding import static_same_padding

DEFAULT_OPSET = 17
PLUGIN_DOMAIN = "cosa_edge"
PLUGIN_NAME = "CosaRegionMasks"


class _PluginRegionMaps(torch.autograd.Function):
    """Region maps that export as one ``cosa_edge::CosaRegionMasks`` node (the TensorRT plugin)."""

    @staticmethod
    def forward(ctx: Any, seg_logits: torch.Tensor, grid_h: int, grid_w: int) -> torch.Tensor:
        return region_maps(seg_logits, (grid_h, grid_w))

    @staticmethod
    def symbolic(g: Any, seg_logits: torch.Value, grid_h: int, grid_w: int) -> torch.Value:
        # The TensorRT ONNX parser maps a node to a plugin when its op type is the plugin's name and it
        # carries plugin_namespace; aot=1 asks for the ahead-of-time implementation (PTX in the engine).
        return g.op(f"{PLUGIN_DOMAIN}::{PLUGIN_NAME}", seg_logits, grid_h_i=grid_h, grid_w_i=grid_w,
                    plugin_namespace_s=PLUGIN_DOMAIN, aot_i=1).setType(
            seg_logits.type().with_sizes([None, 3, grid_h, grid_w]))


@contextlib.contextmanager
def cosa_op_as_plugin(model: nn.Module) -> Iterator[None]:
    """Within this block, COSA modules compute their region maps through the plugin node."""
    modules = [m for m in model.modules() if isinstance(m, COSA)]
    for module in modules:
        module.region_op = lambda seg, grid: _PluginRegionMaps.apply(seg, grid[0], grid[1])
    try:
        yield
    finally:
        for module in modules:
            module.region_op = region_maps


@dataclass(frozen=True)
class ExportResult:
    path: Path
    metadata: ModelMetadata  # as written: graph_sha256 and model_card set
    card: Path | None = None  # the model card beside the model


def export_onnx(checkpoint: Path, output: Path, *, opset: int = DEFAULT_OPSET, cosa_op: str = "onnx",
                cv_results: Path | None = None) -> ExportResult:
    """Export a checkpoint to ONNX (dynamic batch axis), check it with onnx.checker, write it atomically.

    The model carries its metadata, its graph hash and its model card (:mod:`.model_card`), which is also
    written beside it as ``<model>.card.md``; ``cv_results`` (a `cosa-edge cv` results.json) adds
    cross-validated figures to the card.
    """
    # Through require, first: a machine without onnx gets the one-line "install the export extra",
    # not a traceback, and before a checkpoint is loaded for nothing.
    onnx = require("onnx")
    if cosa_op not in ("onnx", "plugin"):
        raise CosaEdgeError(f"--cosa-op must be onnx or plugin, not {cosa_op!r}")
    if opset < 17:
        raise CosaEdgeError(f"opset {opset} is too old; use 17 or newer")
    model, trained, _ = load_verified_model(Path(checkpoint))  # refuses changed weights
    config = trained.config
    cv = read_cv_results(Path(cv_results), config.model.architecture) if cv_results else None
    deploy = DeployModule.of_checkpoint(model, trained).eval()
    if cosa_op == "plugin" and config.model.architecture != "mtl_cosa":
        raise CosaEdgeError(f"--cosa-op plugin needs an mtl_cosa model; this checkpoint is {config.model.architecture}")
    size = config.model.image_size
    example = torch.full((1, 1, size, size), 128.0)
    names = deploy.output_names
    buffer = io.BytesIO()
    plugin = cosa_op_as_plugin(model) if cosa_op == "plugin" else contextlib.nullcontext()
    # TensorFlow-style "same" padding (the EfficientNet-Lite encoders) as constants, then folded into the Convs.
    with plugin, static_same_padding(deploy, example), warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice is not for users
        torch.onnx.export(deploy, (example,), buffer, dynamo=False, opset_version=opset, input_names=[INPUT_NAME],
                          output_names=names, dynamic_axes={INPUT_NAME: {0: "batch"},
                                                            **{n: {0: "batch"} for n in names}},
                          custom_opsets={PLUGIN_DOMAIN: 1} if cosa_op == "plugin" else None)
    proto = onnx.load_from_string(buffer.getvalue())
    metadata = deploy_metadata(model, trained, names, cosa_op)
    proto.producer_name, proto.producer_version = "cosa-edge", __version__
    onnx.checker.check_model(proto, full_check=cosa_op == "onnx")
    # Serialized once: the card names the graph hash, and is stored in the metadata, which the hash leaves out.
    serialized = SerializedModel.of(proto)
    card = build_model_card(metadata, trained.training_record(), cv, graph_sha256=serialized.sha256)
    metadata = serialized.write(Path(output), metadata.with_changes(model_card=card))
    atomic_write_text(card_path(output), card)
    return ExportResult(path=Path(output), metadata=metadata, card=card_path(output))
