"""Checkpoints: written atomically, read as data only (``weights_only``), checked on load."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .. import __version__
from ..config import TrainConfig
from ..data.preprocess import Normalisation
from ..engines.artifact import Integrity, check_sha256
from ..errors import CosaEdgeError
from ..fileio import atomic_write_bytes
from ..model.registry import model_normalisation

CHECKPOINT_FORMAT = "cosa-edge-checkpoint"
CHECKPOINT_VERSION = 1


def weights_sha256(model: nn.Module) -> str:
    """SHA-256 over the parameters and buffers, in state-dict order: the identity of a set of weights."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def parameters_sha256(model: nn.Module) -> str:
    """SHA-256 over the trainable parameters only (what DDP keeps identical across ranks)."""
    digest = hashlib.sha256()
    for name, parameter in model.named_parameters():
        digest.update(name.encode())
        digest.update(parameter.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def save_checkpoint(path: Path, model: nn.Module, config: TrainConfig, **state: Any) -> None:
    """Write model weights, config and any training ``state`` (optimizer, epoch, ...) atomically."""
    payload = {
        "format": CHECKPOINT_FORMAT,
        "format_version": CHECKPOINT_VERSION,
        "cosa_edge_version": __version__,
        "config": config.to_dict(),
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "weights_sha256": weights_sha256(model),
        # The input statistics the weights were trained with (older checkpoints: their encoder's, the default).
        "normalisation": {"mean": model_normalisation(model).mean, "std": model_normalisation(model).std},
        **state,
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def add_to_checkpoint(path: Path, **entries: Any) -> None:
    """Add (or replace) entries of a written checkpoint, atomically; the weights are not touched."""
    payload = load_checkpoint(path)
    payload.update(entries)
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a checkpoint as data (no code runs) and check that it is one of ours."""
    path = Path(path)
    if not path.is_file():
        raise CosaEdgeError(f"checkpoint {path} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CosaEdgeError(
            f"checkpoint {path} is corrupt or not a PyTorch checkpoint ({type(exc).__name__}); "
            "use last.pt or best.pt from a cosa-edge run, or train again"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CosaEdgeError(f"{path} is not a cosa-edge checkpoint (it has no '{CHECKPOINT_FORMAT}' header)")
    if payload.get("format_version", 0) > CHECKPOINT_VERSION:
        raise CosaEdgeError(f"checkpoint {path} was written by a newer cosa-edge ({payload.get('cosa_edge_version')}); "
                            "upgrade")
    return payload


def config_of(payload: dict[str, Any]) -> TrainConfig:
    return TrainConfig.from_dict(payload["config"])


def load_model(path: Path, device: str | torch.device = "cpu") -> tuple[nn.Module, TrainConfig, dict[str, Any]]:
    """Rebuild the model a checkpoint was trained as, with its weights, in eval mode."""
    from ..model import build_model

    payload = load_checkpoint(path)
    config = config_of(payload)
    # Pretrained weights only matter at initialisation; the checkpoint holds the trained ones.
    model = build_model(config.replace(pretrained=None).model if config.model.pretrained else config.model)
    try:
        model.load_state_dict(payload["model"])
    except RuntimeError as exc:
        raise CosaEdgeError(f"checkpoint {path} does not match its own model configuration: {exc}") from None
    if "normalisation" in payload:
        model.normalisation = Normalisation(**payload["normalisation"])
    return model.to(device).eval(), config, payload


def load_verified_model(path: Path, device: str | torch.device = "cpu"
                        ) -> tuple[nn.Module, TrainConfig, dict[str, Any], Integrity]:
    """``load_model``, with the loaded weights' hash checked against the one the checkpoint recorded.

    The state dict is hashed as loaded into the model (``weights_sha256``, as at save time), so a weight
    changed in the file, or a model that does not load it faithfully, is refused.
    """
    model, config, payload = load_model(Path(path), device)
    integrity = check_sha256(weights_sha256(model), payload.get("weights_sha256", ""), Path(path), "saved",
                             "use the checkpoint as training wrote it, or train again")
    return model, config, payload, integrity
