#!/usr/bin/env python3
"""MTL-COSA lite on BUSI's five folds on one GPU in about ten minutes, with no package index (issue #23).

Two steps. Here, where cosa-edge is installed with the lite extra and BUSI is at hand:

    python3 scripts/gpu_busi_lite.py pack --data busi:../shared/data/busi/Dataset_BUSI_with_GT \\
        --folds docs/results/busi-cv/folds.json

writes gpu_payload/ (ignored by git, about 45 MB): BUSI's benign and malignant images and masks resized to
256 px in one compressed array file, the committed folds, and the lite0 ImageNet weights package copied from
this environment (its version and SHA-256 are checked again where it is used). Then, on the GPU machine
(PyTorch, timm, CuPy; no TensorRT, no pycuda, nothing installed from cosa-edge: it imports this checkout):

    python3 scripts/gpu_busi_lite.py run --out $OUT/busi-lite --budget-s 360

times one epoch first, gives the five folds as many epochs as fit the budget (AMP, validation every few
epochs, no per-epoch checkpoints), runs `cosa-edge cv`'s own cross_validate on the committed folds (tables,
ROC, paired records), and times the trained fold-0 model at batch 1 and 8 in FP16, eager and as a CUDA
graph, with the COSA region maps computed op by op (PyTorch) and by the CUDA kernel (CuPy). Everything it
measures is in <out>/summary.json, which it also prints, beside what cross-validation wrote (tables, per-image
predictions, learning logs); the checkpoints stay in --work (a temporary folder unless named).

What differs from the CPU runs in docs/busi-cv.md: the images are resized to 256 px before training, so
segmentation is scored at 256 px rather than at each image's original size, and mixed precision and the
GPU's kernels give other float sums (not the same weights as a CPU run of the same command).

With --device cpu the same steps run on the CPU without AMP or CUDA graphs, which is how the test suite
checks this script at a tiny budget.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import math
import os
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Callable

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from cosa_edge.errors import CosaEdgeError  # noqa: E402  (after the checkout is on the path)
# CuPy would otherwise synchronise on the stream named by a torch tensor's __cuda_array_interface__ each time
# the kernel reads one, which is illegal inside a CUDA graph capture (and needless on one stream).
os.environ.setdefault("CUPY_CUDA_ARRAY_INTERFACE_SYNC", "0")

PAYLOAD = REPO / "gpu_payload"
DATA_FILE = "busi_256.npz"
SITE = "site"  # the weights package, importable from here
ENCODER = "efficientnet_lite0"


# ----------------------------------------------------------------------------------------------------- pack


def _copy_weights_package(site: Path) -> dict[str, str]:
    """Copy the installed lite0 weights package and its metadata into ``site`` (nothing is downloaded)."""
    from cosa_edge.model.lite_weights import LITE_WEIGHTS, weights_file

    weights = LITE_WEIGHTS[ENCODER]
    checked = weights_file(weights)  # the installed file, version- and hash-checked here first
    distribution = importlib.metadata.distribution(weights.distribution)
    spec = importlib.util.find_spec(weights.module)
    if spec is None or spec.origin is None:
        raise SystemExit(f"{weights.distribution} is installed without its module {weights.module}")
    package_dir = Path(spec.origin).parent
    shutil.copytree(package_dir, site / package_dir.name, ignore=shutil.ignore_patterns("__pycache__"))
    info = Path(str(distribution._path))  # type: ignore[attr-defined]  # the .dist-info folder: metadata's anchor
    shutil.copytree(info, site / info.name)
    return {"distribution": weights.distribution, "version": weights.version, "file": checked.name,
            "sha256": weights.sha256}


def pack(data_spec: str, folds_file: Path | None, out: Path, size: int) -> dict[str, Any]:
    import cv2

    from cosa_edge.data.sources import load_dataset

    if out.exists():
        raise SystemExit(f"{out} exists; remove it first (pack never replaces an earlier payload)")
    samples = load_dataset(data_spec)
    names = [s.name for s in samples]
    if folds_file is not None:
        folds = json.loads(folds_file.read_text())
        listed = {name for fold in folds["folds"] for name in fold["test"]}
        if listed != set(names):
            raise SystemExit(f"{folds_file} lists other images than {data_spec} holds "
                             f"({len(listed)} listed, {len(names)} read)")
    staging = out.with_name(out.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    (staging / SITE).mkdir(parents=True)
    images = np.stack([cv2.resize(s.image, (size, size), interpolation=cv2.INTER_AREA) for s in samples])
    masks = np.stack([cv2.resize(s.mask.astype(np.uint8), (size, size), interpolation=cv2.INTER_NEAREST) > 0
                      for s in samples])
    np.savez_compressed(staging / DATA_FILE, images=images, masks=np.packbits(masks, axis=-1),
                        labels=np.array([s.label for s in samples], np.int8), names=np.array(names))
    if folds_file is not None:
        shutil.copyfile(folds_file, staging / "folds.json")
    manifest = {"data": data_spec.split(":")[0], "images": len(samples), "size": size,
                "folds": folds_file.name if folds_file else None, "weights": _copy_weights_package(staging / SITE)}
    (staging / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    staging.rename(out)
    megabytes = sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) / 2**20
    return {**manifest, "megabytes": round(megabytes, 1)}


# ------------------------------------------------------------------------------------------------------ run


def load_payload(payload: Path) -> tuple[list[Any], dict[str, Any]]:
    from cosa_edge.data.sample import Sample

    manifest = json.loads((payload / "manifest.json").read_text())
    sys.path.insert(0, str(payload / SITE))  # the weights package; cosa-edge checks its version and hash
    importlib.invalidate_caches()
    with np.load(payload / DATA_FILE) as arrays:
        size = int(arrays["images"].shape[-1])
        masks = np.unpackbits(arrays["masks"], axis=-1, count=size).astype(bool)
        samples = [Sample(str(name), image, mask, int(label))
                   for name, image, mask, label in zip(arrays["names"], arrays["images"], masks, arrays["labels"])]
    return samples, manifest


def _epochs_for(budget_s: float, folds: int, epoch_s: float, fold_overhead_s: float, max_epochs: int) -> int:
    """As many epochs as let every fold finish within the budget (at least one)."""
    per_fold = budget_s / folds - fold_overhead_s
    return max(1, min(max_epochs, math.floor(per_fold / max(epoch_s, 1e-6))))


def time_one_epoch(config: Any, samples: list[Any], fold: dict[str, Any], run_dir: Path) -> dict[str, float]:
    """One epoch of fold ``fold``'s training images, with its validation pass, as cross-validation will run it."""
    from cosa_edge.train.loop import train

    test = set(fold["test"])
    started = time.perf_counter()
    train(config.replace(epochs=1), [s for s in samples if s.name not in test], run_dir, progress=False)
    wall = time.perf_counter() - started
    epoch = json.loads((run_dir / "log.jsonl").read_text().splitlines()[-1])["seconds"]
    return {"epoch_s": round(epoch, 2), "train_call_s": round(wall, 2), "overhead_s": round(wall - epoch, 2)}


def kernel_region_maps(seg_logits: Any, cells: tuple[int, int]) -> Any:
    """The COSA region maps by the CUDA kernel (through CuPy) on PyTorch's current stream."""
    import torch

    from cosa_edge.kernels import cuda as kernels

    out = torch.empty((seg_logits.shape[0], 3, *cells), device=seg_logits.device, dtype=torch.float32)
    kernels.launch_on_device(seg_logits.contiguous(), out, cells, torch.cuda.current_stream().cuda_stream)
    return out


def _timed(fn: Callable[[], Any], device: str, iterations: int) -> float:
    """Milliseconds per call, after warm-up calls; on CUDA between events, so the GPU's time."""
    import torch

    for _ in range(3):
        fn()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(iterations):
            fn()
        stop.record()
        stop.synchronize()
        return start.elapsed_time(stop) / iterations
    started = time.perf_counter()
    for _ in range(iterations):
        fn()
    return (time.perf_counter() - started) * 1e3 / iterations


def _as_graph(model: Any, example: Any) -> Callable[[], Any]:
    """The model's forward pass captured once as a CUDA graph; calling the result replays it."""
    import torch

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up outside the capture: cuDNN plans, CuPy's module load
        for _ in range(3):
            model(example)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        model(example)
    return graph.replay


def time_model(checkpoint: Path, device: str, batches: tuple[int, ...], iterations: int) -> dict[str, Any]:
    """The trained model at each batch size: FP16 on CUDA (FP32 on a CPU), eager and as a CUDA graph, with the
    region maps op by op and by the kernel; and whether both give the same outputs."""
    import torch

    from cosa_edge.model import CLS_LOGITS
    from cosa_edge.model.regions import region_maps
    from cosa_edge.train.checkpoint import load_model

    model, trained = load_model(checkpoint, device)
    config = trained.config
    model.eval()
    cuda = device.startswith("cuda")
    dtype = torch.float16 if cuda else torch.float32
    model.to(dtype)
    ops: dict[str, Callable[..., Any]] = {"op-by-op (PyTorch)": region_maps}
    if cuda:
        ops["CUDA kernel (CuPy)"] = kernel_region_maps
    size = config.model.image_size
    rows: list[dict[str, Any]] = []
    for batch in batches:
        example = torch.randn(batch, 1, size, size, device=device, dtype=dtype)
        logits: dict[str, Any] = {}
        for op_name, op in ops.items():
            model.cosa.region_op = op
            with torch.inference_mode():
                logits[op_name] = model(example)[CLS_LOGITS].float().cpu()
                row: dict[str, Any] = {"batch": batch, "region_maps": op_name, "precision": str(dtype).split(".")[-1]}
                row["eager_ms"] = round(_timed(lambda x=example: model(x), device, iterations), 3)
                if cuda:
                    try:
                        replay = _as_graph(model, example)
                        row["cuda_graph_ms"] = round(_timed(replay, device, iterations), 3)
                    except Exception as exc:  # reported, not fatal: the eager figures still stand
                        row["cuda_graph_error"] = f"{type(exc).__name__}: {exc}"
                row["images_per_s"] = round(batch * 1e3 / row.get("cuda_graph_ms", row["eager_ms"]), 1)
            rows.append(row)
        if len(logits) == 2:
            first, second = logits.values()
            rows[-1]["same_logits_as_op_by_op"] = bool(torch.equal(first, second))
    model.cosa.region_op = region_maps
    return {"checkpoint": str(checkpoint.relative_to(checkpoint.parents[2])), "image_size": size, "rows": rows,
            "method": f"3 warm-up calls, then {iterations} calls between CUDA events (GPU time; wall clock on a CPU); "
                      "random input; the model as trained, in FP16 on CUDA"}


def copy_results(run_dir: Path, out: Path) -> None:
    """Everything the runs wrote except checkpoints (tens of MB each: they stay in the work folder)."""
    for path in sorted(run_dir.rglob("*")):
        if path.is_file() and path.suffix != ".pt":
            target = out / path.relative_to(run_dir)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)


def run(payload: Path, out: Path, work: Path, budget_s: float, device: str, max_epochs: int, folds: int,
        image_size: int | None, workers: int, iterations: int) -> dict[str, Any]:
    import torch

    from cosa_edge.config import load_preset
    from cosa_edge.train.cv import cross_validate, make_folds

    samples, manifest = load_payload(payload)
    summary: dict[str, Any] = {"script": "scripts/gpu_busi_lite.py", "payload": manifest, "device": device,
                               "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                               "torch": torch.__version__}
    if device.startswith("cuda"):
        summary["gpu"] = torch.cuda.get_device_name(0)
    config = load_preset("lite").replace(device=device, amp=device.startswith("cuda"), num_workers=workers,
                                         save_every=10**6, image_size=image_size)
    cv_dir = work / "cv"
    cv_dir.mkdir(parents=True, exist_ok=True)
    if (payload / "folds.json").exists() and not (cv_dir / "folds.json").exists():
        shutil.copyfile(payload / "folds.json", cv_dir / "folds.json")
    fold_list = (json.loads((cv_dir / "folds.json").read_text())["folds"] if (cv_dir / "folds.json").exists()
                 else make_folds(samples, folds, config.seed, group_duplicates=True))

    timing = time_one_epoch(config, samples, fold_list[0], work / "epoch_timing")
    epochs = _epochs_for(budget_s, len(fold_list), timing["epoch_s"], timing["overhead_s"], max_epochs)
    config = config.replace(epochs=epochs, validate_every=max(1, round(epochs / 5)))
    summary["one_epoch"] = timing
    summary["plan"] = {"budget_s": budget_s, "folds": len(fold_list), "epochs": epochs,
                       "validate_every": config.validate_every}

    started = time.perf_counter()
    result = cross_validate(config, samples, f"busi:{payload.name}", cv_dir, folds=len(fold_list), progress=False)
    summary["cv_s"] = round(time.perf_counter() - started, 1)
    aggregate = result.results[config.model.architecture]["aggregate"]
    summary["cv"] = {"aggregate": aggregate, "tables": "cv/tables.md"}
    summary["timing"] = _section(lambda: time_model(cv_dir / config.model.architecture / "fold0" / "last.pt",
                                                    device, (1, 8), iterations))
    summary["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    copy_results(work, out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    return summary


def _section(fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    try:
        return fn()
    except Exception as exc:  # the training's results are worth keeping whatever the timing does
        return {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc(limit=6)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    packer = commands.add_parser("pack", help="write the payload here (CPU; needs the lite extra and the data)")
    packer.add_argument("--data", default=f"busi:{REPO.parent / 'shared' / 'data' / 'busi' / 'Dataset_BUSI_with_GT'}",
                        help="a cosa-edge data spec (default: BUSI beside this checkout)")
    packer.add_argument("--folds", type=Path, default=REPO / "docs" / "results" / "busi-cv" / "folds.json",
                        help="the committed folds (a folds.json of `cosa-edge cv`); 'none' to make new ones there")
    packer.add_argument("--out", type=Path, default=PAYLOAD)
    packer.add_argument("--size", type=int, default=256, help="the side the images are resized to")
    runner = commands.add_parser("run", help="train and time on the GPU (or, at a tiny budget, on the CPU)")
    runner.add_argument("--payload", type=Path, default=PAYLOAD)
    runner.add_argument("--out", type=Path, required=True, help="a new folder for the runs and summary.json")
    runner.add_argument("--work", type=Path, help="a folder for the checkpoints (default: a new temporary one)")
    runner.add_argument("--budget-s", type=float, default=360.0, help="seconds for the five folds' training")
    runner.add_argument("--device", default="cuda")
    runner.add_argument("--max-epochs", type=int, default=100, help="never more epochs than this (paper: 100)")
    runner.add_argument("--folds", type=int, default=5, help="used where the payload carries no folds.json")
    runner.add_argument("--image-size", type=int, help="override the preset's 256 (tests)")
    runner.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1), help="data-loader processes")
    runner.add_argument("--iterations", type=int, default=100, help="timed calls per timing row")
    args = parser.parse_args()
    try:
        return _main(args)
    except CosaEdgeError as exc:  # bad input: one line, as cosa-edge's own commands say it
        raise SystemExit(f"error: {exc}") from None


def _main(args: argparse.Namespace) -> int:
    if args.command == "pack":
        folds = None if str(args.folds) == "none" else args.folds
        result = pack(args.data, folds, args.out, args.size)
    else:
        if args.out.exists() and any(args.out.iterdir()):
            raise SystemExit(f"{args.out} is not empty; choose a new --out (a run never replaces an earlier one)")
        work = args.work or Path(tempfile.mkdtemp(prefix="busi-lite-"))
        result = run(args.payload, args.out, work, args.budget_s, args.device, args.max_epochs, args.folds,
                     args.image_size, args.workers, args.iterations)
    print(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
