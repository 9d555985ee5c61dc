"""Checkpoints: written atomically, read as data only (``weights_only``), checked on load."""

from __future__ import annotations

import hashlib
import io
import math
from dataclasses import dataclass, field, fields, replace
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


@dataclass(frozen=True)
class Checkpoint:
    """What a checkpoint file holds, typed: the one reader of its entries.

    The file itself stays a dict of plain types (``torch.load(weights_only=True)`` reads nothing else), so every
    checkpoint written before this record existed still loads; an entry missing from an older file takes the value
    training would have written without it. ``optimizer`` and ``scaler`` are in ``last.pt`` only (what resume
    needs); ``best.pt`` holds weights and metadata. Entries this version does not know are kept in ``extra`` and
    written back unchanged.
    """

    config: TrainConfig
    weights: dict[str, torch.Tensor]
    weights_sha256: str
    normalisation: Normalisation | None = None  # None: an old file; the encoder's default statistics apply
    cosa_edge_version: str = ""
    epoch: int = 0
    best_score: float = -math.inf
    best_epoch: int = 0
    data: dict[str, Any] = field(default_factory=dict)
    tasks: tuple[str, ...] = ()
    presence: dict[str, Any] = field(default_factory=dict)
    calibration: dict[str, Any] = field(default_factory=dict)
    ood: dict[str, Any] = field(default_factory=dict)
    selected_by: str = ""
    optimizer: dict[str, Any] | None = None
    scaler: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def min_lesion_share(self) -> float | None:
        """The presence rule's threshold chosen in training; None where the checkpoint has none."""
        share = self.presence.get("min_lesion_share")
        return None if share is None else float(share)

    @property
    def temperature(self) -> float:
        """The class logits' calibration temperature; 1 (the raw softmax) where none was fitted."""
        return float(self.calibration.get("temperature", 1.0))

    @property
    def has_ood_score(self) -> bool:
        """Whether training fitted the out-of-distribution Gaussian (its mean and precision are in ``ood``)."""
        return "mean" in self.ood and "precision" in self.ood

    @property
    def ood_description(self) -> dict[str, Any]:
        """What an artifact says about the out-of-distribution score: everything but the Gaussian itself."""
        return {k: v for k, v in self.ood.items() if k not in ("mean", "precision")}

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> Checkpoint:
        known = {f.name for f in fields(cls)} - {"config", "weights", "normalisation", "tasks", "extra"}
        norm = payload.get("normalisation")
        return cls(
            config=TrainConfig.from_dict(payload["config"]), weights=payload["model"],
            normalisation=Normalisation(**norm) if norm else None, tasks=tuple(payload.get("tasks", ())),
            **{name: payload[name] for name in known if name in payload},
            extra={k: v for k, v in payload.items() if k not in known | _FILE_KEYS})

    def to_payload(self) -> dict[str, Any]:
        """The dict the file holds (plain types only); None entries (no optimizer in best.pt) are left out."""
        payload: dict[str, Any] = {
            "format": CHECKPOINT_FORMAT, "format_version": CHECKPOINT_VERSION,
            "cosa_edge_version": self.cosa_edge_version or __version__,
            "config": self.config.to_dict(), "model": self.weights, "weights_sha256": self.weights_sha256,
            **self.extra}
        if self.normalisation is not None:
            payload["normalisation"] = {"mean": self.normalisation.mean, "std": self.normalisation.std}
        for item in fields(self):
            if item.name in ("config", "weights", "weights_sha256", "normalisation", "cosa_edge_version", "extra"):
                continue
            value = getattr(self, item.name)
            if value is not None:
                payload[item.name] = list(value) if item.name == "tasks" else value
        return payload

    def training_record(self) -> dict[str, Any]:
        """How this checkpoint was trained, as plain data for the model card (which reads no torch)."""
        record: dict[str, Any] = {"config": self.config.to_dict(), "epoch": self.epoch}
        if self.selected_by:
            record["selected_by"] = self.selected_by
        return record

    def write(self, path: Path) -> None:
        """Write the checkpoint atomically: an interruption leaves the previous file whole."""
        buffer = io.BytesIO()
        torch.save(self.to_payload(), buffer)
        atomic_write_bytes(path, buffer.getvalue())


#: Entries of the file that are not fields of :class:`Checkpoint` under their own name.
_FILE_KEYS = frozenset({"format", "format_version", "config", "model", "normalisation", "tasks"})


def save_checkpoint(path: Path, model: nn.Module, config: TrainConfig, **state: Any) -> Checkpoint:
    """Write ``model``'s weights, ``config`` and training ``state`` (any :class:`Checkpoint` field) atomically."""
    norm = model_normalisation(model)  # the input statistics the weights were trained with
    checkpoint = Checkpoint(config=config, weights={k: v.detach().cpu() for k, v in model.state_dict().items()},
                            weights_sha256=weights_sha256(model), normalisation=norm, cosa_edge_version=__version__,
                            **{**state, "tasks": tuple(state.get("tasks", ()))})
    checkpoint.write(path)
    return checkpoint


def add_to_checkpoint(path: Path, **entries: Any) -> None:
    """Replace entries (fields of :class:`Checkpoint`) of a written checkpoint, atomically; weights untouched."""
    replace(load_checkpoint(path), **entries).write(path)


def load_checkpoint(path: Path) -> Checkpoint:
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
    try:
        return Checkpoint.from_payload(payload)
    except (KeyError, TypeError, ValueError) as exc:
        raise CosaEdgeError(f"checkpoint {path} lacks or garbles an entry every cosa-edge checkpoint holds "
                            f"({type(exc).__name__}: {exc}); use last.pt or best.pt as training wrote them") from None


def load_model(path: Path, device: str | torch.device = "cpu") -> tuple[nn.Module, Checkpoint]:
    """Rebuild the model a checkpoint was trained as, with its weights, in eval mode."""
    from ..model import build_model

    checkpoint = load_checkpoint(path)
    config = checkpoint.config
    # Pretrained weights only matter at initialisation; the checkpoint holds the trained ones.
    model = build_model(config.replace(pretrained=None).model if config.model.pretrained else config.model)
    try:
        model.load_state_dict(checkpoint.weights)
    except RuntimeError as exc:
        raise CosaEdgeError(f"checkpoint {path} does not match its own model configuration: {exc}") from None
    if checkpoint.normalisation is not None:
        model.normalisation = checkpoint.normalisation
    return model.to(device).eval(), checkpoint


def load_verified_model(path: Path, device: str | torch.device = "cpu") -> tuple[nn.Module, Checkpoint, Integrity]:
    """``load_model``, with the loaded weights' hash checked against the one the checkpoint recorded.

    The state dict is hashed as loaded into the model (``weights_sha256``, as at save time), so a weight
    changed in the file, or a model that does not load it faithfully, is refused.
    """
    model, checkpoint = load_model(Path(path), device)
    integrity = check_sha256(weights_sha256(model), checkpoint.weights_sha256, Path(path), "saved",
                             "use the checkpoint as training wrote it, or train again")
    return model, checkpoint, integrity
