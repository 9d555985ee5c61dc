"""The optimizer of a run: Adam or AdamW, the encoder in a group of its own where its rate differs, and frozen
batch-norm statistics."""

from __future__ import annotations

import torch
from torch import nn

from ..config import TrainConfig
from ..errors import CosaEdgeError


OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """Adam or AdamW; with ``encoder_lr_factor`` other than 1, the encoder in a group of its own with its own base
    rate (``base_lr``, which the schedule scales; one group otherwise, as checkpoints before this expect)."""
    if config.optimizer not in OPTIMIZERS:
        raise CosaEdgeError(f"optimizer {config.optimizer!r}: choose one of {', '.join(OPTIMIZERS)}")
    encoder = getattr(model, "encoder", None)
    if config.encoder_lr_factor != 1.0 and encoder is not None:
        own = {id(p) for p in encoder.parameters()}
        groups = [{"params": list(encoder.parameters()), "base_lr": config.lr * config.encoder_lr_factor},
                  {"params": [p for p in model.parameters() if id(p) not in own], "base_lr": config.lr}]
    else:
        groups = [{"params": list(model.parameters()), "base_lr": config.lr}]
    for group in groups:
        group["lr"] = group["base_lr"]
    return OPTIMIZERS[config.optimizer](groups, lr=config.lr, betas=config.betas, weight_decay=config.weight_decay)


def freeze_batchnorm(module: nn.Module) -> None:
    """Batch-norm layers of ``module`` normalise with their running statistics and stop updating them."""
    for layer in module.modules():
        if isinstance(layer, nn.modules.batchnorm._BatchNorm):
            layer.eval()
