"""The training loop: one process or one rank of a DDP run, with exact resume.

A run directory holds ``last.pt`` (written every epoch), ``best.pt`` (the
epoch with the best validation score; the last epoch when there is no
validation split), ``log.jsonl`` (one line per epoch) and ``config.json``.
Every write is atomic, so an interruption at any moment leaves the previous
epoch's files whole, and ``--resume`` continues from there with the same
batches and augmentations an uninterrupted run would have seen.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

from .. import CLASS_NAMES, NO_LESION
from ..calibration import calibrate
from ..config import TrainConfig
from ..data import Sample, class_counts
from ..data.augment import acquisition_view
from ..data.splits import near_duplicate_groups, stratified_holdout
from ..errors import CosaEdgeError
from ..fileio import atomic_write_json, atomic_write_text, json_safe
from ..model import CLS_LOGITS, SEG_LOGITS, build_model, model_normalisation
from ..ood import choose_threshold, fit_gaussian, mahalanobis
from ..presence import DEFAULT_MIN_LESION_SHARE, choose_min_lesion_share
from ..progress import progress_bar
from .checkpoint import Checkpoint, add_to_checkpoint, load_checkpoint, parameters_sha256, save_checkpoint
from .dataset import SegClsDataset
from .distributed import DistContext, resolve_device
from .schedule import lr_factor
from .reproducibility import reproducible, training_threads
from .evaluate import Predictions, collect_features, predict, presence_of, score, selection_score


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


def multitask_loss(outputs: dict[str, torch.Tensor], masks: torch.Tensor, labels: torch.Tensor, config: TrainConfig,
                   class_weights: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """alpha * CE(segmentation) + beta * CE(classification) (paper Eq. 1); one term for single-task models.

    Lesion-free images (label NO_LESION) count in the segmentation term only: they have no class.
    """
    terms: dict[str, torch.Tensor] = {}
    if SEG_LOGITS in outputs:
        terms["seg_loss"] = F.cross_entropy(outputs[SEG_LOGITS].float(), masks)
        if config.dice_weight > 0:
            terms["dice_loss"] = soft_dice_loss(outputs[SEG_LOGITS].float(), masks)
        if config.presence_weight > 0:
            terms["presence_loss"] = presence_loss(outputs[SEG_LOGITS].float(), masks)
    if CLS_LOGITS in outputs:
        logits = outputs[CLS_LOGITS].float()
        known = labels != NO_LESION
        # A batch of lesion-free images only still passes through the classifier (0 x its logits), so that
        # every parameter gets a gradient, as DistributedDataParallel expects of each step.
        terms["cls_loss"] = F.cross_entropy(logits[known], labels[known], weight=class_weights) if known.any() \
            else logits.sum() * 0.0
    if "seg_loss" in terms and "cls_loss" in terms:
        loss = config.seg_weight * terms["seg_loss"] + config.cls_weight * terms["cls_loss"]
    else:
        loss = terms.get("seg_loss", terms.get("cls_loss"))
    if "dice_loss" in terms:
        loss = loss + config.dice_weight * terms["dice_loss"]
    if "presence_loss" in terms:
        loss = loss + config.presence_weight * terms["presence_loss"]
    return loss, {k: float(v.detach()) for k, v in terms.items()}


#: The presence term scores an image by the mean lesion probability of this share of its pixels, the most
#: lesion-like ones: about the smallest lesion the presence rule keeps (docs/busi-cv.md: thresholds of 0.1-0.6%
#: of the image), so one confident speck does not make a lesion and a small real lesion still counts whole.
PRESENCE_TOP_SHARE = 0.005


def presence_loss(seg_logits: torch.Tensor, masks: torch.Tensor, top_share: float = PRESENCE_TOP_SHARE) -> torch.Tensor:
    """Binary cross-entropy of each image's presence score against whether its mask holds a lesion.

    The score is the mean lesion probability of the image's ``top_share`` most lesion-like pixels. Pixel
    cross-entropy lets a lesion-free image keep a few percent of false lesion pixels cheaply (they are few among
    all pixels), and the Dice term never sees such an image; but the presence rule asks exactly whether any
    region is lesion-like enough, so this term asks the same question of the mask while training.
    """
    lesion = torch.softmax(seg_logits, dim=1)[:, 1].flatten(1)
    top = max(1, int(round(top_share * lesion.shape[1])))
    score = lesion.topk(top, dim=1).values.mean(dim=1).clamp(1e-6, 1 - 1e-6)
    holds_lesion = ((masks == 1).flatten(1).sum(1) > 0).float()
    return F.binary_cross_entropy(score, holds_lesion)


def soft_dice_loss(seg_logits: torch.Tensor, masks: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """1 - the mean, over the images that hold a lesion, of the soft Dice of the lesion probability against the mask.

    Per image, so that a small lesion weighs as much as a large one. Lesion-free images (BUSI's normal ones) take
    no part: on an empty mask the Dice is 0 for any false lesion, large or small, so its loss sits at 1 with next to
    no gradient, while the lesion images' Dice rewards generous masks; together they taught a model to draw a
    lesion on every normal image (fold 0: all 26 normal test images). The pixel cross-entropy, which does see
    every false pixel, is what keeps lesion-free images empty. A batch without a lesion gives 0.
    """
    truth = (masks == 1).float()
    holds_lesion = truth.flatten(1).sum(1) > 0
    if not holds_lesion.any():
        return seg_logits.sum() * 0.0  # keeps the graph (and DDP's gradient hooks) intact
    lesion = torch.softmax(seg_logits, dim=1)[:, 1][holds_lesion]
    truth = truth[holds_lesion]
    overlap = (lesion * truth).flatten(1).sum(1)
    total = lesion.flatten(1).sum(1) + truth.flatten(1).sum(1)
    return 1.0 - ((2.0 * overlap + smooth) / (total + smooth)).mean()


#: The fewest validation images an out-of-distribution threshold is chosen on. The largest of n in-distribution
#: scores is exceeded by a new in-distribution image with probability 1/(n+1): 20 keeps that under 5%.
MIN_OOD_VALIDATION_IMAGES = 20
#: Other acquisitions of each training image the out-of-distribution Gaussian is fitted on (data/augment.py).
ACQUISITION_VIEWS = 2


def with_acquisition_views(samples: list[Sample], seed: int, stream: int) -> list[np.ndarray]:
    """The images and ACQUISITION_VIEWS other acquisitions of each (another aspect ratio, compression)."""
    images = [s.image for s in samples]
    for index, sample in enumerate(samples):
        images += [acquisition_view(sample.image, np.random.default_rng([seed, stream, index, k]))
                   for k in range(ACQUISITION_VIEWS)]
    return images


def fit_out_of_distribution(run_dir: Path, config: TrainConfig, train_samples: list[Sample],
                            val_samples: list[Sample], device: torch.device) -> None:
    """Give best.pt and last.pt the Gaussian of their own training features and a threshold (cosa_edge/ood.py).

    Each checkpoint gets its own: the features, and so the Gaussian, belong to its weights. Without enough
    validation images no threshold can be trusted, and the checkpoint records why it has no score.
    """
    if len(val_samples) < MIN_OOD_VALIDATION_IMAGES:
        why = (f"none: {len(val_samples)} validation images, fewer than the {MIN_OOD_VALIDATION_IMAGES} a threshold "
               "needs" if val_samples else "none: training had no validation split")
        for name in ("last.pt", "best.pt"):
            if (run_dir / name).exists():
                add_to_checkpoint(run_dir / name, ood={"chosen_on": why})
        return
    fitted: dict[str, dict[str, Any]] = {}  # by weights hash: best.pt often holds last.pt's weights
    for name in ("last.pt", "best.pt"):
        path = run_dir / name
        if not path.exists():
            continue
        checkpoint = load_checkpoint(path)
        if checkpoint.weights_sha256 in fitted:
            add_to_checkpoint(path, ood=fitted[checkpoint.weights_sha256])
            continue
        model = build_model(config.model)
        model.load_state_dict(checkpoint.weights)
        model.to(device)
        # The training images and two other acquisitions of each (aspect ratio, compression): differences that
        # every scanner and video link make are not what the score is for.
        training = collect_features(model, with_acquisition_views(train_samples, config.seed, 0),
                                    config.model.image_size, device)
        if training is None or len(training) < 2:
            continue  # a model without pooled features (VGG-16, LeNet) has no score
        gaussian = fit_gaussian(training)
        held_out = collect_features(model, with_acquisition_views(val_samples, config.seed, 1),
                                    config.model.image_size, device)
        threshold = choose_threshold(mahalanobis(held_out, gaussian["mean"], gaussian["precision"]),
                                     chosen_on=f"validation: {len(val_samples)} held-out images and "
                                               f"{ACQUISITION_VIEWS} other acquisitions of each")
        fitted[checkpoint.weights_sha256] = {
            **threshold, "mean": torch.from_numpy(gaussian["mean"]), "precision": torch.from_numpy(gaussian["precision"]),
            "shrinkage": gaussian["shrinkage"], "training_images": gaussian["training_images"],
            "features": "mean and SD per channel of the encoder's first three stages"}
        add_to_checkpoint(path, ood=fitted[checkpoint.weights_sha256])


#: The fewest validation lesion images a temperature is fitted on; below it the probabilities stay unscaled.
MIN_CALIBRATION_IMAGES = 10


def fit_calibration(samples: list[Sample], predictions: Predictions) -> dict[str, Any] | None:
    """Temperature scaling fitted on the validation images that hold a lesion; None without any."""
    if predictions.probabilities is None:
        return None
    lesion = np.array([s.has_lesion for s in samples], bool)
    if lesion.sum() < MIN_CALIBRATION_IMAGES:
        # One temperature from a handful of images is noise (a single image drives it to the range's end).
        return {"temperature": 1.0, "fitted_on": f"none: {int(lesion.sum())} validation lesion images, fewer than "
                                                 f"the {MIN_CALIBRATION_IMAGES} a fit needs"}
    return calibrate(predictions.probabilities[lesion], predictions.labels[lesion],
                     fitted_on=f"validation: {int(lesion.sum())} lesion images")


def balanced_class_weights(samples: list[Sample]) -> torch.Tensor:
    """Inverse class frequency over the lesion images, scaled so that a balanced set gets weights of 1."""
    counts = np.bincount([s.label for s in samples if s.has_lesion], minlength=len(CLASS_NAMES)).astype(np.float64)
    if (counts == 0).any():
        raise CosaEdgeError(f"--balance-classes needs lesion images of every class; the training set has {counts.tolist()}")
    return torch.tensor(counts.sum() / (len(counts) * counts), dtype=torch.float32)


def split_validation(samples: list[Sample], config: TrainConfig) -> tuple[list[Sample], list[Sample]]:
    if config.val_fraction <= 0:
        return samples, []
    # Near-duplicates (BUSI saves some lesions twice) stay on one side, as cross-validation keeps them in one fold.
    train_idx, val_idx = stratified_holdout([s.stratum for s in samples], config.val_fraction, seed=config.seed,
                                            groups=near_duplicate_groups(samples))
    if not train_idx:
        raise CosaEdgeError("the validation split left no training images; lower --val-fraction or add data")
    return [samples[i] for i in train_idx], [samples[i] for i in val_idx]


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


def _check_resume(run_dir: Path, config: TrainConfig, resume: bool) -> Checkpoint | None:
    last = run_dir / "last.pt"
    if not last.exists():
        return None
    if not resume:
        raise CosaEdgeError(f"{run_dir} already holds a training run; pass --resume to continue it or choose another --out")
    previous = load_checkpoint(last)
    if previous.config.replace(epochs=config.epochs) != config:
        raise CosaEdgeError(f"{last} was trained with other settings than these; resume with the same settings "
                            "(only --epochs may change) or choose another --out")
    if previous.optimizer is None or previous.scaler is None:
        raise CosaEdgeError(f"{last} holds no optimizer state (a best.pt renamed?); resume from the last.pt "
                            "training wrote, or choose another --out")
    return previous


def _truncate_log(log_path: Path, epochs_done: int) -> None:
    """Drop log lines of epochs that never reached a checkpoint (the run was interrupted in between)."""
    if not log_path.exists():
        return
    kept = [line for line in log_path.read_text().splitlines() if line and json.loads(line)["epoch"] <= epochs_done]
    atomic_write_text(log_path, "".join(line + "\n" for line in kept))


def _append_log(log_path: Path, record: dict[str, Any]) -> None:
    previous = log_path.read_text() if log_path.exists() else ""
    atomic_write_text(log_path, previous + json.dumps(json_safe(record)) + "\n")


def _all_reduce_mean(value: float, ctx: DistContext) -> float:
    if not ctx.distributed:
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=ctx.device)
    dist.all_reduce(tensor)
    return float(tensor.item()) / ctx.world_size


def train(config: TrainConfig, samples: list[Sample], run_dir: Path, *, data_summary: dict[str, Any] | None = None,
          resume: bool = False, progress: bool = True, ctx: DistContext | None = None) -> TrainResult:
    """Train ``config.model`` on ``samples`` and write the run into ``run_dir``.

    The thread count (``config.threads``, else the CPUs available) and deterministic algorithms are set for the
    run and put back afterwards (train/reproducibility.py): the same command on the same machine gives the same
    weights.
    """
    ctx = ctx or DistContext(device=resolve_device(config.device))
    with reproducible(training_threads(config.threads), ctx.device) as runtime:
        return _train(config, samples, run_dir, data_summary, resume, progress, ctx, runtime)


def _train(config: TrainConfig, samples: list[Sample], run_dir: Path, data_summary: dict[str, Any] | None,
           resume: bool, progress: bool, ctx: DistContext, runtime: dict[str, Any]) -> TrainResult:
    run_dir = Path(run_dir)
    if not samples:
        raise CosaEdgeError("the training data set is empty")
    if config.batch_size % ctx.world_size:
        raise CosaEdgeError(f"batch size {config.batch_size} does not split evenly over {ctx.world_size} processes")
    if config.sync_batchnorm and ctx.device.type != "cuda":
        raise CosaEdgeError("--sync-bn needs CUDA GPUs (PyTorch's SyncBatchNorm does not run on CPUs); drop it on CPU")
    lr_factor(config.lr_schedule, 0.0, config.epochs, config.warmup_epochs)  # a bad schedule fails before any work
    train_samples, val_samples = split_validation(samples, config)
    previous = _check_resume(run_dir, config, resume)

    torch.manual_seed(config.seed)
    model = build_model(config.model)
    tasks = model.tasks
    optimizer = make_optimizer(model, config)
    use_amp = config.amp and ctx.device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    start_epoch, best_score, best_epoch = 0, -math.inf, 0
    if previous is not None:
        model.load_state_dict(previous.weights)
        optimizer.load_state_dict(previous.optimizer)
        for group in optimizer.param_groups:  # a run written before groups had their own base rate had one group
            group.setdefault("base_lr", config.lr)
        scaler.load_state_dict(previous.scaler)
        start_epoch, best_score, best_epoch = previous.epoch, previous.best_score, previous.best_epoch
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
    local_batch = config.batch_size // ctx.world_size
    loader = DataLoader(dataset, batch_size=local_batch, sampler=sampler, num_workers=config.num_workers,
                        drop_last=len(dataset) >= config.batch_size, pin_memory=ctx.device.type == "cuda")

    if ctx.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(run_dir / "config.json", {"config": config.to_dict(), "data": data_summary or {},
                                                    "runtime": {**runtime, "torch": torch.__version__}})
        _truncate_log(run_dir / "log.jsonl", start_epoch)
    summary = {**(data_summary or {}), "train_counts": class_counts(train_samples), "val_counts": class_counts(val_samples)}
    last_metrics: dict[str, Any] = {}
    class_weights = balanced_class_weights(train_samples).to(ctx.device) if config.balance_classes else None
    # The presence threshold of the checkpoint being written: chosen on each validation pass, else the default.
    presence: dict[str, Any] = {"min_lesion_share": DEFAULT_MIN_LESION_SHARE,
                                "chosen_on": "default: training had no validation split"}
    # Temperature 1 (the raw softmax) until a validation pass fits one.
    calibration: dict[str, Any] = {"temperature": 1.0, "fitted_on": "none: training had no validation split"}
    if previous is not None:
        presence = previous.presence or presence
        calibration = previous.calibration or calibration
    autocast = (lambda: torch.autocast("cuda", dtype=torch.float16)) if use_amp else contextlib.nullcontext

    for epoch in range(start_epoch, config.epochs):
        started = time.perf_counter()
        network.train()
        if config.freeze_encoder_batchnorm and hasattr(model, "encoder"):  # VGG-16 and LeNet have none
            freeze_batchnorm(model.encoder)
        sampler.set_epoch(epoch)
        dataset.set_epoch(epoch)
        totals: dict[str, float] = {}
        n_steps = max(len(loader), 1)
        batches = progress_bar(loader, desc=f"epoch {epoch + 1}/{config.epochs}", unit="batch", leave=False,
                               disable=not (progress and ctx.is_main))
        for step, (images, masks, labels) in enumerate(batches):
            factor = lr_factor(config.lr_schedule, epoch + step / n_steps, config.epochs, config.warmup_epochs)
            for group in optimizer.param_groups:
                group["lr"] = group["base_lr"] * factor
            images, masks, labels = (t.to(ctx.device, non_blocking=True) for t in (images, masks, labels))
            with autocast():
                outputs = network(images)
            loss, parts = multitask_loss(outputs, masks, labels, config, class_weights)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            for key, value in {"loss": float(loss.detach()), **parts}.items():
                totals[key] = totals.get(key, 0.0) + value
            batches.set_postfix(loss=f"{float(loss.detach()):.4f}")
        n_batches = max(len(loader), 1)
        record: dict[str, Any] = {"epoch": epoch + 1, **{k: _all_reduce_mean(v / n_batches, ctx) for k, v in totals.items()},
                                  "lr": optimizer.param_groups[0]["lr"]}  # the last step's rate

        if ctx.is_main:
            final = epoch + 1 == config.epochs
            validate = bool(val_samples) and (final or (epoch + 1) % config.validate_every == 0)
            if validate:
                predictions = predict(model, val_samples, config.model.image_size, ctx.device)
                presence = choose_min_lesion_share(*presence_of(val_samples, predictions)) \
                    if predictions.masks is not None else presence
                calibration = fit_calibration(val_samples, predictions) or calibration
                last_metrics = score(val_samples, predictions, presence["min_lesion_share"])
                record["val"] = {**last_metrics, "calibration": calibration}
                current = selection_score(last_metrics)
            elif val_samples:
                current = None  # not validated this epoch: it cannot be chosen as the best
            else:
                current = float(epoch + 1)  # no validation: the latest epoch is the best we know
            improved = current is not None and validate and current > best_score
            if improved or (final and not val_samples):
                best_score, best_epoch = current, epoch + 1
            if current is not None:
                record["score"] = current
            record["seconds"] = round(time.perf_counter() - started, 2)
            _append_log(run_dir / "log.jsonl", record)
            if final or (epoch + 1) % config.save_every == 0:
                state = {"optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(), "epoch": epoch + 1,
                         "best_score": best_score, "best_epoch": best_epoch, "data": summary, "tasks": list(tasks),
                         "presence": presence, "calibration": calibration}
                save_checkpoint(run_dir / "last.pt", model, config, **state)
            # best.pt holds weights and metadata only (no optimizer): it is for evaluation and export.
            if best_epoch == epoch + 1:
                save_checkpoint(run_dir / "best.pt", model, config, epoch=epoch + 1, best_score=best_score,
                                best_epoch=epoch + 1, data=summary, tasks=list(tasks), presence=presence,
                                calibration=calibration,
                                selected_by="validation score" if val_samples else "last epoch (no validation split)")
            if progress:
                tqdm.write(_epoch_line(record))
        if ctx.distributed:
            dist.barrier()

    if ctx.is_main:
        fit_out_of_distribution(run_dir, config, train_samples, val_samples, ctx.device)

    hashes = [parameters_sha256(model)]
    if ctx.distributed:
        gathered: list[Any] = [None] * ctx.world_size
        dist.all_gather_object(gathered, hashes[0])
        hashes = [str(h) for h in gathered]
        if ctx.is_main:
            if len(set(hashes)) != 1:
                tqdm.write(f"warning: ranks ended with different weights: {hashes}")
            atomic_write_json(run_dir / "ranks.json", {"world_size": ctx.world_size, "rank_parameter_sha256": hashes})
    return TrainResult(run_dir=run_dir, epochs_done=config.epochs, best_epoch=best_epoch, best_score=best_score,
                       last_metrics=last_metrics, rank_parameter_hashes=hashes)


def _epoch_line(record: dict[str, Any]) -> str:
    parts = [f"epoch {record['epoch']}", f"loss {record.get('loss', float('nan')):.4f}"]
    val = record.get("val", {})
    if "segmentation" in val:
        parts.append(f"val DSC {val['segmentation']['DSC']:.3f}")
    if "classification_paper" in val:
        parts.append(f"val ACC {val['classification_paper']['ACC']:.3f}")
    if "auc" in val:
        parts.append(f"AUC {val['auc']:.3f}")
    parts.append(f"{record['seconds']:.1f}s")
    return "  ".join(parts)
