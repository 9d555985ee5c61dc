"""Commands that train and score models: train, evaluate, cv, models, demo (torch, imported inside each)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from ..errors import CosaEdgeError
from .app import cli
from .options import DATA_HELP, config_from_options, overwrite_option, training_options


@cli.command()
@training_options
@click.option("--model", "architecture", help="Architecture (default: the preset's, mtl_cosa); see `cosa-edge models`.")
@click.option("--val-fraction", type=click.FloatRange(0, 0.9), help="Share of each class held out to pick best.pt.")
@click.option("--sync-bn", "sync_batchnorm", is_flag=True, help="SyncBatchNorm across GPUs (DDP on CUDA).")
@click.option("--out", "run_dir", required=True, type=click.Path(file_okay=False),
              help="Run folder for checkpoints and log.")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last.pt.")
@click.option("--nproc-per-node", type=click.IntRange(min=1), default=1, show_default=True,
              help="Processes per node; more than 1 trains with DistributedDataParallel through torchrun.")
@click.option("--nnodes", type=click.IntRange(min=1), default=1, show_default=True, help="Nodes of a multi-node run.")
@click.option("--node-rank", type=click.IntRange(min=0), default=0, show_default=True, help="This node's rank.")
@click.option("--master-addr", default="127.0.0.1", show_default=True, help="Address of node 0 (multi-node).")
@click.option("--master-port", type=int, default=29500, show_default=True, help="Port on node 0 (multi-node).")
def train(preset: str, data_spec: str, run_dir: str, resume: bool, nproc_per_node: int, nnodes: int,
          node_rank: int, master_addr: str, master_port: int, **overrides: Any) -> None:
    """Train a model and write checkpoints (last.pt, best.pt) and log.jsonl into --out.

    \b
    Examples:
      cosa-edge train --preset edge --data phantom --epochs 5 --out runs/demo
      cosa-edge train --preset paper --data busi:data/Dataset_BUSI_with_GT --out runs/busi
      cosa-edge train --data busi:PATH --nproc-per-node 2 --out runs/ddp
    """
    from ..train.distributed import LaunchOptions
    from ..train.runner import run_training

    config = config_from_options(preset, **overrides)
    launch = LaunchOptions(nproc_per_node, nnodes, node_rank, master_addr, master_port)
    result = run_training(config, data_spec, Path(run_dir), resume=resume, launch=launch)
    if result is not None:
        click.echo(f"trained {result.epochs_done} epochs; best epoch {result.best_epoch}; checkpoints in {run_dir}")
    else:
        click.echo(f"distributed training finished; checkpoints in {run_dir}")


@cli.command()
@click.argument("checkpoint", type=click.Path(dir_okay=False))
@click.option("--data", "data_spec", default="phantom", show_default=True, help=DATA_HELP)
@click.option("--split", type=click.Choice(["all", "val", "train"]), default="all", show_default=True,
              help="val: the images the run held out for validation (same seed and fraction); train: the others.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), help="Folder for metrics.json and tables.md.")
@click.option("--device", default="auto", show_default=True)
@click.option("--include-normal/--no-include-normal", default=None,
              help="Score lesion-free images too (presence); default: as the run was trained.")
@overwrite_option
def evaluate(checkpoint: str, data_spec: str, split: str, out_dir: str | None, device: str,
             include_normal: bool | None, overwrite: bool) -> None:
    """Score a checkpoint with the paper's metrics on a data set."""
    from ..data.sources import data_spec_folder
    from ..outputs import guard_outputs
    from ..report.tables import TABLE_FILES

    guard_outputs({"CHECKPOINT": checkpoint, "--data": data_spec_folder(data_spec)},
                  {"--out": [Path(out_dir) / name for name in ("metrics.json", *TABLE_FILES)] if out_dir else None},
                  overwrite=overwrite)
    from ..data import load_dataset
    from ..fileio import atomic_write_json
    from ..report.tables import aggregate, write_tables
    from ..train.checkpoint import load_model
    from ..train.distributed import resolve_device
    from ..train.evaluate import predict, score
    from ..train.loop import split_validation

    torch_device = resolve_device(device)
    model, trained = load_model(Path(checkpoint), torch_device)
    config = trained.config
    include_normal = config.include_normal if include_normal is None else include_normal
    samples = load_dataset(data_spec, phantom_size=config.model.image_size, seed=config.seed,
                           include_normal=include_normal)
    if split != "all":
        train_part, val_part = split_validation(samples, config)
        samples = val_part if split == "val" else train_part
        if not samples:
            raise CosaEdgeError(f"the {split} split is empty (the run's val_fraction is {config.val_fraction})")
    metrics = score(samples, predict(model, samples, config.model.image_size, torch_device, progress=True),
                    trained.min_lesion_share)
    click.echo(json.dumps(_rounded(metrics), indent=2))
    if out_dir:
        atomic_write_json(Path(out_dir) / "metrics.json", metrics)
        results = {config.model.architecture: {"folds": [metrics], "aggregate": aggregate([metrics])}}
        write_tables(results, data_spec, Path(out_dir),
                     preamble=f"Evaluation of `{checkpoint}` on `{data_spec}` ({split}).")
        click.echo(f"wrote {out_dir}/metrics.json and tables.md")


def _rounded(obj: Any) -> Any:
    if isinstance(obj, float):
        return round(obj, 4)
    if isinstance(obj, dict):
        return {k: _rounded(v) for k, v in obj.items()}
    return obj


@cli.command()
@training_options
@click.option("--folds", type=click.IntRange(min=2), default=5, show_default=True)
@click.option("--models", default=None,
              help="Comma-separated architectures to compare, or 'all' for the paper's seven (default: the preset's).")
@click.option("--no-group-duplicates", is_flag=True,
              help="Split at random instead of keeping near-duplicates in one fold.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Folder for folds, runs and tables.")
def cv(preset: str, data_spec: str, folds: int, models: str | None, no_group_duplicates: bool, out_dir: str,
       **overrides: Any) -> None:
    """Stratified k-fold cross-validation; writes the paper's Tables 1 and 2 and ROC curves.

    Rerunning the same command after an interruption finishes the folds that are missing.
    """
    from ..data import load_dataset
    from ..model import ARCHITECTURES
    from ..train.cv import cross_validate

    config = config_from_options(preset, **overrides)
    architectures = None
    if models:
        architectures = list(ARCHITECTURES) if models == "all" else [m.strip() for m in models.split(",") if m.strip()]
        unknown = [m for m in architectures if m not in ARCHITECTURES]
        if unknown:
            raise CosaEdgeError(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(ARCHITECTURES)}")
    samples = load_dataset(data_spec, phantom_size=config.model.image_size, seed=config.seed,
                           include_normal=config.include_normal)
    result = cross_validate(config, samples, data_spec, Path(out_dir), folds=folds, architectures=architectures,
                            group_duplicates=not no_group_duplicates)
    click.echo((Path(out_dir) / "tables.md").read_text())
    if (Path(out_dir) / "paired.md").exists():
        click.echo((Path(out_dir) / "paired.md").read_text())
    click.echo("wrote " + ", ".join(str(p) for p in result.files))

@cli.command()
def models() -> None:
    """List the architectures `--model` and `cv --models` accept."""
    from ..model import ARCHITECTURES

    for name, architecture in ARCHITECTURES.items():
        click.echo(f"{name:10s} {architecture.description}")

@cli.command()
@click.option("--out", "out_dir", default="demo-out", show_default=True, type=click.Path(file_okay=False))
@click.option("--data", "data_spec", default="phantom:160", show_default=True, help=DATA_HELP)
@click.option("--epochs", type=click.IntRange(min=1), default=12, show_default=True)
@click.option("--image-size", type=click.IntRange(min=32), default=128, show_default=True)
@click.option("--device", default="auto", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the phantoms, the split, the initialisation and the augmentation; the same seed on the "
              "same machine trains the same model.")
def demo(out_dir: str, data_spec: str, epochs: int, image_size: int, device: str, seed: int) -> None:
    """The whole path on defaults that need no data and no GPU: phantoms -> train -> evaluate -> report."""
    from ..demo import run_demo

    report = run_demo(Path(out_dir), data_spec=data_spec, epochs=epochs, image_size=image_size, device=device,
                      seed=seed)
    click.echo(f"demo finished; open {report}")

