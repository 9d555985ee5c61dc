"""The training loop: one process or one rank of a DDP run, with exact resume.

A run directory holds ``last.pt`` (written every epoch), ``best.pt`` (the
epoch with the best validation score; the last epoch when there is no
validation split), ``log.jsonl`` (one line per epoch) and ``config.json``.
Every write is atomic, so an interruption at any moment leaves the previous
epoch's files whole, and ``--resume`` continues from there with the same
batches and augmentations an uninterrupted run would have seen.

A run is set up once (:func:`_set_up`: model, optimizer, data, the state a resumed run left), then each epoch
is trained (:func:`_train_one_epoch`) and, on the main process, validated and saved
(:func:`_validate_and_save`); what training fits besides the weights is in fitting.py, the objective in
losses.py.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

from ..config import TrainConfig
from ..data import Sample, class_counts
from ..data.splits import near_duplicate_groups, stratified_holdout
from ..errors import CosaEdgeError
from ..fileio import atomic_write_json
from ..model import build_model, model_normalisation
from ..presence import DEFAULT_MIN_LESION_SHARE, choose_min_lesion_share
from ..progress import progress_bar
from .checkpoint import Checkpoint, load_checkpoint, parameters_sha256, save_checkpoint
from .dataset import SegClsDataset
from .distributed import DistContext, resolve_device
from .evaluate import predict, presence_of, score, selection_score
from .fitting import fit_calibration, fit_out_of_distribution
from .losses import balanced_class_weights, multitask_loss
from .optim import freeze_batchnorm, make_optimizer
from .reproducibility import reproducible, training_threads
from .run_log import append_log, epoch_line, truncate_log
from .schedule import lr_factor


@dataclass(frozen=True)
class TrainResult:
    run_dir: Path
    epochs_done: int
    best_epoch: int
    best_score: float
    last_metrics: dict[str, Any]
    rank_parameter_hashes: list[str]

    @property
    def last_checkpoint(self) -> Path:
        return self.run_dir / "last.pt"

    @property
    def best_checkpoint(self) -> Path:
        return self.run_dir / "best.pt"


def split_validation(samples: list[Sample], config: TrainConfig) -> tuple[list[Sample], list[Sample]]:
    """The training and validation parts of ``samples`` (``config.val_fraction`` of each stratum, seeded): the
    same split for training, `evaluate --split`, the demo and the INT8 scripts."""
    if config.val_fraction <= 0:
        return samples, []
    # Near-duplicates (BUSI saves some lesions twice) stay on one side, as cross-validation keeps them in one fold.
    train_idx, val_idx = stratified_holdout([s.stratum for s in samples], config.val_fraction, seed=config.seed,
                                            groups=near_duplicate_groups(samples))
    if not train_idx:
        raise CosaEdgeError("the validation split left no training images; lower --val-fraction or add data")
    return [samples[i] for i in train_idx], [samples[i] for i in val_idx]


def _previous_run(run_dir: Path, config: TrainConfig, resume: bool) -> Checkpoint | None:
    """The last.pt a resumed run continues from; None for a new run. Refuses to overwrite or mix settings."""
    last = run_dir / "last.pt"
    if not last.exists():
        return None
    if not resume:
        raise CosaEdgeError(f"{run_dir} already holds a training run; pass --resume to continue it or choose "
                            "another --out")
    previous = load_checkpoint(last)
    if previous.config.replace(epochs=config.epochs) != config:
        raise CosaEdgeError(f"{last} was trained with other settings than these; resume with the same settings "
                            "(only --epochs may change) or choose another --out")
    if previous.optimizer is None or previous.scaler is None:
        raise CosaEdgeError(f"{last} holds no optimizer state (a best.pt renamed?); resume from the last.pt "
                            "training wrote, or choose another --out")
    return previous


def _all_reduce_mean(value: float, ctx: DistContext) -> float:
    if not ctx.distributed:
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=ctx.device)
    dist.all_reduce(tensor)
    return float(tensor.item()) / ctx.world_size


@dataclass
class _Run:
    """What one training run carries from epoch to epoch."""

    config: TrainConfig
    ctx: DistContext
    run_dir: Path
    model: nn.Module
    network: nn.Module  # the model, or its DDP wrapper
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    autocast: Callable[[], contextlib.AbstractContextManager[Any]]
    dataset: SegClsDataset
    sampler: DistributedSampler
    loader: DataLoader
    train_samples: list[Sample]
    val_samples: list[Sample]
    summary: dict[str, Any]
    class_weights: torch.Tensor | None
    # The presence threshold and calibration of the checkpoint being written: chosen on each validation pass,
    # else the defaults (or what a resumed run had).
    presence: dict[str, Any] = field(default_factory=lambda: {
        "min_lesion_share": DEFAULT_MIN_LESION_SHARE, "chosen_on": "default: training had no validation split"})
    calibration: dict[str, Any] = field(default_factory=lambda: {  # temperature 1: the raw softmax
        "temperature": 1.0, "fitted_on": "none: training had no validation split"})
    start_epoch: int = 0
    best_score: float = -math.inf
    best_epoch: int = 0
    last_metrics: dict[str, Any] = field(default_factory=dict)


def train(config: TrainConfig, samples: list[Sample], run_dir: Path, *, data_summary: dict[str, Any] | None = None,
          resume: bool = False, progress: bool = True, ctx: DistContext | None = None) -> TrainResult:
    """Train ``config.model`` on ``samples`` and write the run into ``run_dir``.

    The thread count (``config.threads``, else the CPUs available) and deterministic algorithms are set for the
    run and put back afterwards (train/reproducibility.py): the same command on the same machine gives the same
    weights.
    """
    ctx = ctx or DistContext(device=resolve_device(config.device))
    with reproducible(training_threads(config.threads), ctx.device) as runtime:
        run = _set_up(config, samples, Path(run_dir), data_summary, resume, ctx, runtime)
        for epoch in range(run.start_epoch, config.epochs):
            started = time.perf_counter()
            record = _train_one_epoch(run, epoch, progress)
            if ctx.is_main:
                _validate_and_save(run, epoch, record, started, progress)
            if ctx.distributed:
                dist.barrier()
        return _finish(run)


def _check_arguments(config: TrainConfig, samples: list[Sample], ctx: DistContext) -> None:
    if not samples:
        raise CosaEdgeError("the training data set is empty")
    if config.batch_size % ctx.world_size:
        raise CosaEdgeError(f"batch size {config.batch_size} does not split evenly over {ctx.world_size} processes")
    if config.sync_batchnorm and ctx.device.type != "cuda":
        raise CosaEdgeError("--sync-bn needs CUDA GPUs (PyTorch's SyncBatchNorm does not run on CPUs); drop it on CPU")
    lr_factor(config.lr_schedule, 0.0, config.epochs, config.warmup_epochs)  # a bad schedule fails before any work


def _set_up(config: TrainConfig, samples: list[Sample], run_dir: Path, data_summary: dict[str, Any] | None,
            resume: bool, ctx: DistContext, runtime: dict[str, Any]) -> _Run:
    """The model, optimizer and data of a run, with the state of the run it resumes; config.json written."""
    _check_arguments(config, samples, ctx)
    train_samples, val_samples = split_validation(samples, config)
    previous = _previous_run(run_dir, config, resume)

    torch.manual_seed(config.seed)  # before the model is built: its initial weights
    model = build_model(config.model)
    optimizer = make_optimizer(model, config)
    use_amp = config.amp and ctx.device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    if previous is not None:
        _restore(previous, model, optimizer, scaler, config)
    model.to(ctx.device)
    for state in optimizer.state.values():  # optimizer tensors were loaded on the CPU
        for key, value in state.items():
            if isinstance(value, torch.Tensor) and key != "step":
                state[key] = value.to(ctx.device)
    network: nn.Module = model
    if ctx.distributed:
        if config.sync_batchnorm:
            network = nn.SyncBatchNorm.convert_sync_batchnorm(network)
        network = DistributedDataParallel(network, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None)

    dataset = SegClsDataset(train_samples, config.model.image_size, augment=config.augment, seed=config.seed,
                            norm=model_normalisation(model))
    # DistributedSampler in one process too: the same seed gives the same global batches for any world size.
    sampler = DistributedSampler(dataset, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True, seed=config.seed)
    loader = DataLoader(dataset, batch_size=config.batch_size // ctx.world_size, sampler=sampler,
                        num_workers=config.num_workers, drop_last=len(dataset) >= config.batch_size,
                        pin_memory=ctx.device.type == "cuda")
    if ctx.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(run_dir / "config.json", {"config": config.to_dict(), "data": data_summary or {},
                                                    "runtime": {**runtime, "torch": torch.__version__}})
        truncate_log(run_dir / "log.jsonl", previous.epoch if previous else 0)
    run = _Run(config=config, ctx=ctx, run_dir=run_dir, model=model, network=network, optimizer=optimizer,
               scaler=scaler, autocast=(lambda: torch.autocast("cuda", dtype=torch.float16)) if use_amp
               else contextlib.nullcontext, dataset=dataset, sampler=sampler, loader=loader,
               train_samples=train_samples, val_samples=val_samples,
               summary={**(data_summary or {}), "train_counts": class_counts(train_samples),
                        "val_counts": class_counts(val_samples)},
               class_weights=balanced_class_weights(train_samples).to(ctx.device) if config.balance_classes else None)
    if previous is not None:
        run.start_epoch, run.best_score, run.best_epoch = previous.epoch, previous.best_score, previous.best_epoch
        run.presence = previous.presence or run.presence
        run.calibration = previous.calibration or run.calibration
    return run


def _restore(previous: Checkpoint, model: nn.Module, optimizer: torch.optim.Optimizer,
             scaler: torch.amp.GradScaler, config: TrainConfig) -> None:
    """Weights, optimizer and scaler state of the run being resumed."""
    model.load_state_dict(previous.weights)
    optimizer.load_state_dict(previous.optimizer)
    for group in optimizer.param_groups:  # a run written before groups had their own base rate had one group
        group.setdefault("base_lr", config.lr)
    scaler.load_state_dict(previous.scaler)


def _train_one_epoch(run: _Run, epoch: int, progress: bool) -> dict[str, Any]:
    """One pass over the training data; the epoch's log record (mean losses over all ranks, the last rate)."""
    config, ctx, optimizer = run.config, run.ctx, run.optimizer
    run.network.train()
    if config.freeze_encoder_batchnorm and hasattr(run.model, "encoder"):  # VGG-16 and LeNet have none
        freeze_batchnorm(run.model.encoder)
    run.sampler.set_epoch(epoch)
    run.dataset.set_epoch(epoch)
    totals: dict[str, float] = {}
    n_steps = max(len(run.loader), 1)
    batches = progress_bar(run.loader, desc=f"epoch {epoch + 1}/{config.epochs}", unit="batch", leave=False,
                           disable=not (progress and ctx.is_main))
    for step, (images, masks, labels) in enumerate(batches):
        factor = lr_factor(config.lr_schedule, epoch + step / n_steps, config.epochs, config.warmup_epochs)
        for group in optimizer.param_groups:
            group["lr"] = group["base_lr"] * factor
        images, masks, labels = (t.to(ctx.device, non_blocking=True) for t in (images, masks, labels))
        with run.autocast():
            outputs = run.network(images)
        loss, parts = multitask_loss(outputs, masks, labels, config, run.class_weights)
        optimizer.zero_grad(set_to_none=True)
        run.scaler.scale(loss).backward()
        run.scaler.step(optimizer)
        run.scaler.update()
        for key, value in {"loss": float(loss.detach()), **parts}.items():
            totals[key] = totals.get(key, 0.0) + value
        batches.set_postfix(loss=f"{float(loss.detach()):.4f}")
    return {"epoch": epoch + 1, **{k: _all_reduce_mean(v / n_steps, ctx) for k, v in totals.items()},
            "lr": optimizer.param_groups[0]["lr"]}  # the last step's rate


def _validate_and_save(run: _Run, epoch: int, record: dict[str, Any], started: float, progress: bool) -> None:
    """Validate where due (presence threshold, temperature, score), log the epoch, write last.pt and best.pt."""
    config, val_samples = run.config, run.val_samples
    final = epoch + 1 == config.epochs
    validate = bool(val_samples) and (final or (epoch + 1) % config.validate_every == 0)
    if validate:
        predictions = predict(run.model, val_samples, config.model.image_size, run.ctx.device)
        if predictions.masks is not None:
            run.presence = choose_min_lesion_share(*presence_of(val_samples, predictions))
        run.calibration = fit_calibration(val_samples, predictions) or run.calibration
        run.last_metrics = score(val_samples, predictions, run.presence["min_lesion_share"])
        record["val"] = {**run.last_metrics, "calibration": run.calibration}
        current: float | None = selection_score(run.last_metrics)
    elif val_samples:
        current = None  # not validated this epoch: it cannot be chosen as the best
    else:
        current = float(epoch + 1)  # no validation: the latest epoch is the best we know
    if (current is not None and validate and current > run.best_score) or (final and not val_samples):
        run.best_score, run.best_epoch = current, epoch + 1
    if current is not None:
        record["score"] = current
    record["seconds"] = round(time.perf_counter() - started, 2)
    append_log(run.run_dir / "log.jsonl", record)
    metadata = {"best_score": run.best_score, "data": run.summary, "tasks": tuple(run.model.tasks),
                "presence": run.presence, "calibration": run.calibration}
    if final or (epoch + 1) % config.save_every == 0:
        save_checkpoint(run.run_dir / "last.pt", run.model, config, optimizer=run.optimizer.state_dict(),
                        scaler=run.scaler.state_dict(), epoch=epoch + 1, best_epoch=run.best_epoch, **metadata)
    # best.pt holds weights and metadata only (no optimizer): it is for evaluation and export.
    if run.best_epoch == epoch + 1:
        save_checkpoint(run.run_dir / "best.pt", run.model, config, epoch=epoch + 1, best_epoch=epoch + 1,
                        selected_by="validation score" if val_samples else "last epoch (no validation split)",
                        **metadata)
    if progress:
        tqdm.write(epoch_line(record))


def _finish(run: _Run) -> TrainResult:
    """The out-of-distribution fit (main process) and every rank's weights hash (DDP keeps them equal)."""
    ctx = run.ctx
    if ctx.is_main:
        fit_out_of_distribution(run.run_dir, run.config, run.train_samples, run.val_samples, ctx.device)
    hashes = [parameters_sha256(run.model)]
    if ctx.distributed:
        gathered: list[Any] = [None] * ctx.world_size
        dist.all_gather_object(gathered, hashes[0])
        hashes = [str(h) for h in gathered]
        if ctx.is_main:
            if len(set(hashes)) != 1:
                tqdm.write(f"warning: ranks ended with different weights: {hashes}")
            atomic_write_json(run.run_dir / "ranks.json", {"world_size": ctx.world_size,
                                                           "rank_parameter_sha256": hashes})
    return TrainResult(run_dir=run.run_dir, epochs_done=run.config.epochs, best_epoch=run.best_epoch,
                       best_score=run.best_score, last_metrics=run.last_metrics, rank_parameter_hashes=hashes)
