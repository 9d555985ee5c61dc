"""Model and training configuration: dataclasses, loaded from the preset TOML files.

Torch-free, so that artifacts' metadata can be read on a deploy box.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from .errors import CosaEdgeError


#: Encoders by family (torch-free, for the command line): torchvision's ResNets and timm's EfficientNet-Lite.
RESNET_ENCODERS = ("resnet18", "resnet34", "resnet50", "resnet101")
LITE_ENCODERS = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")
ENCODERS = RESNET_ENCODERS + LITE_ENCODERS


@dataclass(frozen=True)
class ModelConfig:
    architecture: str = "mtl_cosa"
    encoder: str = "resnet18"
    image_size: int = 256
    decoder_channels: tuple[int, int, int, int] = (256, 128, 64, 32)
    num_classes: int = 2
    #: ImageNet weights for the encoder: "imagenet" (torchvision's for ResNets; the installed weights package for
    #: EfficientNet-Lite, model/lite_weights.py) or a torchvision checkpoint file; None trains from scratch.
    pretrained: str | None = None


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run. The paper's values are the defaults."""

    model: ModelConfig = field(default_factory=ModelConfig)
    preset: str = "custom"
    epochs: int = 100
    batch_size: int = 12  # global: split evenly over the processes of a distributed run
    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.99)
    weight_decay: float = 5e-4
    seg_weight: float = 0.8  # alpha in the paper's Eq. (1)
    cls_weight: float = 0.2  # beta
    seed: int = 0
    augment: bool = True
    amp: bool = True  # mixed precision, used on CUDA only
    val_fraction: float = 0.15
    num_workers: int = 0
    sync_batchnorm: bool = False
    device: str = "auto"
    #: Write last.pt every this many epochs (and always after the last one); resume restarts from it.
    save_every: int = 1
    #: Validate every this many epochs (and always after the last one, whose fits the checkpoint carries): on a GPU
    #: an epoch can take less time than the validation pass's CPU work. Does not change the weights of last.pt.
    validate_every: int = 1
    #: Train with lesion-free images too (BUSI's normal/, a fifth of phantoms): segmentation loss only.
    include_normal: bool = False
    #: Weight the classification loss by inverse class frequency (BUSI is 2:1 benign to malignant), so that
    #: the rarer class is not learnt last. Off in the paper's preset, which does not do it.
    balance_classes: bool = False
    #: Weight of a soft Dice term on the lesion beside the segmentation cross-entropy (0: the paper's loss).
    #: Cross-entropy over pixels is dominated by background; Dice weighs a small lesion as much as a large one.
    dice_weight: float = 0.0
    #: Weight of an image-level term on the segmentation: the mean lesion probability of each image's most
    #: lesion-like pixels (PRESENCE_TOP_SHARE of them) against whether it holds a lesion (binary cross-entropy).
    #: Only lesion-free images give it much to do: it teaches the mask to be empty where there is no lesion.
    presence_weight: float = 0.0
    #: "constant" (the paper's) or "warmup-cosine": a linear warm-up over ``warmup_epochs`` to ``lr``, then a
    #: cosine decay to 0 at the last epoch, step by step (train/schedule.py).
    lr_schedule: str = "constant"
    warmup_epochs: float = 0.0
    #: CPU threads for training, set for the run and recorded in its config.json; None: the CPUs available to the
    #: process (shared among a node's DDP processes). The thread count changes a CPU run's float sums, so the
    #: same weights need the same count (train/reproducibility.py).
    threads: int | None = None
    #: Fine-tuning a pretrained encoder. The encoder's base learning rate is ``lr`` times this (the decoder and
    #: heads keep ``lr``); the schedule scales each group's own base rate. 1: one rate for every weight, as before.
    encoder_lr_factor: float = 1.0
    #: Keep the encoder's batch-norm statistics as loaded (ImageNet's) instead of re-estimating them from batches
    #: of 12 ultrasound images; its affine weights still learn.
    freeze_encoder_batchnorm: bool = False
    #: "adam" (the paper's: weight decay added to the gradient) or "adamw" (decoupled weight decay, which does not
    #: pull pretrained weights towards zero through Adam's per-weight scaling).
    optimizer: str = "adam"

    def replace(self, **changes: Any) -> TrainConfig:
        model_changes = {k: v for k, v in changes.items() if k in _MODEL_FIELDS and v is not None}
        train_changes = {k: v for k, v in changes.items() if k not in _MODEL_FIELDS and v is not None}
        model = dataclasses.replace(self.model, **model_changes)
        return dataclasses.replace(self, model=model, **train_changes)

    def to_dict(self) -> dict[str, Any]:
        return _plain(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        model_data = dict(data.get("model", {}))
        unknown = (set(data) - _TRAIN_FIELDS - {"model"}) | (set(model_data) - _MODEL_FIELDS)
        if unknown:
            raise CosaEdgeError(f"unknown configuration keys: {', '.join(sorted(unknown))}")
        if "decoder_channels" in model_data:
            model_data["decoder_channels"] = tuple(model_data["decoder_channels"])
        train_data = {k: v for k, v in data.items() if k != "model"}
        if "betas" in train_data:
            train_data["betas"] = tuple(train_data["betas"])
        return cls(model=ModelConfig(**model_data), **train_data)


_MODEL_FIELDS = {f.name for f in dataclasses.fields(ModelConfig)}
_TRAIN_FIELDS = {f.name for f in dataclasses.fields(TrainConfig)} - {"model"}


def _plain(value: Any) -> Any:
    """Tuples to lists, recursively: checkpoints and JSON hold only plain types."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def preset_names() -> list[str]:
    return sorted(p.name.removesuffix(".toml") for p in resources.files("cosa_edge.presets").iterdir()
                  if p.name.endswith(".toml"))


def load_preset(name_or_path: str) -> TrainConfig:
    """A preset by name (``edge``, ``paper``) or a TOML file of the same shape."""
    path = Path(name_or_path)
    if path.suffix == ".toml":
        if not path.is_file():
            raise CosaEdgeError(f"preset file {path} does not exist")
        text = path.read_text(encoding="utf-8")
    elif name_or_path in preset_names():
        text = resources.files("cosa_edge.presets").joinpath(f"{name_or_path}.toml").read_text(encoding="utf-8")
    else:
        raise CosaEdgeError(f"unknown preset {name_or_path!r}; choose one of {', '.join(preset_names())} or a .toml "
                            "file")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CosaEdgeError(f"preset {name_or_path} is not valid TOML: {exc}") from None
    flat = {**data.get("train", {}), "model": data.get("model", {}), "preset": path.stem}
    return TrainConfig.from_dict(flat)
