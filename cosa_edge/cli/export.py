"""Commands that turn a checkpoint into deployable files: export (ONNX), build-engine, export-triton."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ..engines.build import TARGETS
from ..errors import CosaEdgeError
from .app import cli, research_use
from .options import overwrite_option


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
                   "card (mean ± SD, min–max). Without it the card says that no cross-validated performance is "
                   "attached.")
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
    from ..data import load_dataset
    from ..export.model_card import card_path
    from ..outputs import guard_outputs

    guard_outputs({"CHECKPOINT": checkpoint, "--cv-results": cv_results},
                  {"-o": output, "the model card": card_path(Path(output))}, overwrite=overwrite)
    from ..export.onnx_export import export_onnx
    from ..export.parity import check_export_parity

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
              help="Runtime to build for (default: tensorrt where tensorrt and pycuda are installed, "
                   "else onnxruntime).")
@click.option("--precision", type=click.Choice(["fp16", "fp32", "int8"]), default=None,
              help="Default: fp16 for TensorRT, fp32 for ONNX Runtime and OpenVINO (CPUs gain little from FP16). "
                   "int8 needs --calib-data.")
@click.option("--batch", default="1:4:8", show_default=True, help="MIN:OPT:MAX batch sizes of the TensorRT profile.")
@click.option("--workspace", type=float, default=2.0, show_default=True, help="TensorRT builder workspace in GiB.")
@click.option("--timing-cache", type=click.Path(dir_okay=False),
              help="TensorRT timing cache (default: beside the engine).")
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
    from ..data.sources import data_spec_folder
    from ..data.splits import parse_split
    from ..engines import RUNTIMES, engine_files
    from ..engines.runtimes import default_target
    from ..outputs import guard_outputs

    runtime = RUNTIMES[target or default_target()]
    calib_file = calib_data if calib_data and calib_data.lower().endswith(".npy") else None
    guard_outputs({"ONNX_MODEL": onnx_model, "--calib-data": calib_file or data_spec_folder(calib_data),
                   "--check-data": data_spec_folder(check_data), "--split": parse_split(split)[0] if split else None},
                  {"-o": engine_files(output),
                   "--timing-cache": (timing_cache or runtime.timing_cache_for(Path(output)))
                   if runtime.timing_cache else None},
                  overwrite=overwrite, updated=("--timing-cache",))
    from ..engines.build import BatchRange, build_engine, describe

    precision = precision or runtime.default_precision
    int8, check = _int8_recipe_or_check(Path(onnx_model), precision, check_data, calib_data, calib_count,
                                        calib_method, split, accept_accuracy_loss)
    result = build_engine(Path(onnx_model), Path(output), target=runtime.name, precision=precision,
                          batch=BatchRange.parse(batch), workspace_gib=workspace,
                          timing_cache=Path(timing_cache) if timing_cache else None, check=check, int8=int8)
    for note in result.notes:
        click.echo(f"note: {note}", err=True)
    click.echo(describe(result))
    if int8 is not None:
        _echo_int8_check(result.check)
    elif result.check is not None:
        agreement = result.check
        click.echo(f"{precision} engine against the FP32 model on {agreement.images} images: max probability "
                   f"difference {agreement.max_probability_difference:.2e}, mask Dice agreement "
                   f"{agreement.mask_dice_agreement:.4f}, same class on {agreement.same_class:.0%}")


def _int8_recipe_or_check(onnx_model: Path, precision: str, check_data: str | None, calib_data: str | None,
                          calib_count: int, calib_method: str, split: str | None,
                          accept_accuracy_loss: bool) -> tuple[Any, Any]:
    """build-engine's images: an INT8 build's calibration and check images, or the images another build is checked
    on against the FP32 model (read before the build: a mistyped data spec should not cost a build)."""
    from ..data import load_dataset
    from ..engines.build import Int8Recipe, against_fp32, read_onnx_metadata
    from ..engines.quantized_build import select_int8_images

    source = read_onnx_metadata(onnx_model)
    if precision == "int8" and source.precision == "fp32":
        images = select_int8_images(calib_data, calib_count, check_data, split, source.input_size)
        if images.note:
            click.echo(f"note: {images.note}", err=True)
        return Int8Recipe.from_images(images, calib_method, accept_accuracy_loss), None
    if calib_data or split or accept_accuracy_loss:
        raise CosaEdgeError("--calib-data, --split and --accept-accuracy-loss are for --precision int8")
    check_data = check_data or "phantom:8"
    if check_data == "none" or precision == "int8":  # an INT8 QDQ source was checked when it was written
        return None, None
    return None, against_fp32(onnx_model, load_dataset(check_data, progress=False, phantom_size=source.input_size))


def _echo_int8_check(fidelity: Any) -> None:
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
    from ..engines import engine_files
    from ..outputs import guard_outputs
    from ..serve.triton_repo import model_folders

    guard_outputs({"ENGINE": engine_files(engine)},
                  {"--repo": [Path(repo) / folder for folder in model_folders(name, pipeline=not no_pipeline)]},
                  overwrite=overwrite)
    from ..serve.triton_repo import export_triton

    result = export_triton(Path(engine), Path(repo), name=name, max_batch=max_batch, instances=instances, kind=kind,
                           overwrite=overwrite, triton_trt_version=triton_trt_version,
                           tensorrt_accelerator=tensorrt_accelerator, pipeline=not no_pipeline)
    click.echo(f"wrote {result.config} and {result.model_file} (backend {result.backend})")
    for folder in result.pipeline_dirs:
        click.echo(f"wrote {folder}")

