"""The INT8 accuracy check of every fold of a `cosa-edge cv` run: each fold's last.pt (the checkpoint cv scores)
exported to ONNX and quantized for ONNX Runtime, calibrated on the fold's training images and checked on its test
images, as `cosa-edge build-engine --precision int8 --split FOLDS.json:K` does for a user.

    python scripts/int8_check_folds.py RUN [--model mtl_cosa] [--methods minmax,entropy] [--work DIR] [-o FILE.md]

Each build is made with --accept-accuracy-loss into --work (not into the run), so that a failed check still gives
its figures; the table says which passed. The first method is the one stated before the runs (issue #23's rule:
the default build, minmax on 400 images); any other is exploratory and chosen on the same test images, so a pass
there is not evidence of the same weight.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from cosa_edge.backends import open_engine
from cosa_edge.fileio import print_and_save

COSA_EDGE = [sys.executable, "-m", "cosa_edge.cli"]
# percentile and entropy hold every calibration image's activations in memory; the CLI asks for 100 or fewer.
CALIB_COUNT = {"minmax": 400, "entropy": 100, "percentile": 100}


def run_cli(args: list[str]) -> None:
    done = subprocess.run(COSA_EDGE + args, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"cosa-edge {' '.join(args[:1])} failed:\n{done.stderr.strip()}")


def quantization_check(engine: Path) -> dict[str, Any]:
    """The accuracy check the build recorded in the engine's metadata (read, hash-checked, as any engine is)."""
    with open_engine(engine) as opened:
        return opened.metadata.quantization["check"]


def check_fold(run: Path, model: str, fold: int, method: str, data: str, work: Path) -> dict[str, Any]:
    onnx_path = work / f"{model}-fold{fold}.onnx"
    if not onnx_path.exists():
        run_cli(["export", str(run / model / f"fold{fold}" / "last.pt"), "-o", str(onnx_path),
                 "--parity-data", "none"])
    engine = work / f"{model}-fold{fold}.{method}.int8.onnx"
    run_cli(["build-engine", str(onnx_path), "-o", str(engine), "--target", "onnxruntime", "--precision", "int8",
             "--calib-data", data, "--split", f"{run / 'folds.json'}:{fold}", "--calib-method", method,
             "--calib-count", str(CALIB_COUNT[method]), "--accept-accuracy-loss", "--overwrite"])
    return {"fold": fold, "method": method, **quantization_check(engine)}


def markdown(rows: list[dict[str, Any]], title: str) -> str:
    lines = [f"## {title}", "",
             "| method | fold | images | class flips (B→M, M→B) | presence flips | mask Dice agreement | "
             "FP32 acc | INT8 acc | FP32 AUC | INT8 AUC | FP32 Dice | INT8 Dice | check |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        flips, presence = row["class_flips"], row["presence_flips"]
        ref, cand = row["reference"], row["candidate"]
        lines.append(
            f"| {row['method']} | {row['fold']} | {row['images']} | {flips['benign_to_malignant']}, "
            f"{flips['malignant_to_benign']} | {sum(presence.values())} | {row['mask_dice_agreement']:.4f} | "
            f"{ref['acc']:.3f} | {cand['acc']:.3f} | {ref['auc']:.3f} | {cand['auc']:.3f} | {ref['dice']:.3f} | "
            f"{cand['dice']:.3f} | {'passed' if row['passed'] else 'failed'} |")
    limits = rows[0]["limits"]
    lines += ["", f"Limits of the check: class flips at most {limits['max_class_flip_share']:.0%} of the images "
              f"(malignant to benign at most {limits['max_malignant_to_benign_share']:.0%}), presence flips at most "
              f"{limits['max_presence_flip_share']:.0%}, mask Dice agreement at least "
              f"{limits['min_mask_dice_agreement']}. CPU class of the check: {rows[0]['cpu_class']}.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="the --out folder of a `cosa-edge cv` run")
    parser.add_argument("--model", default="mtl_cosa")
    parser.add_argument("--methods", default="minmax", help="calibration methods, comma-separated; the first is "
                        "the stated one (default minmax)")
    parser.add_argument("--data", default="busi:../shared/data/busi", help="the data spec the run was trained on")
    parser.add_argument("--work", type=Path, default=Path("runs/int8-folds"), help="where engines are written")
    parser.add_argument("-o", "--out", type=Path, help="write the Markdown table here as well")
    args = parser.parse_args(argv)
    methods = [m for m in args.methods.split(",") if m]
    unknown = [m for m in methods if m not in CALIB_COUNT]
    if unknown:
        raise SystemExit(f"unknown calibration method {unknown}: choose from {sorted(CALIB_COUNT)}")
    folds = json.loads((args.run / "folds.json").read_text(encoding="utf-8"))["folds"]
    missing = [k for k in range(len(folds)) if not (args.run / args.model / f"fold{k}" / "last.pt").is_file()]
    if missing:
        raise SystemExit(f"{args.run}/{args.model} has no last.pt for folds {missing} (checkpoints stay on the "
                         "machine that trained them)")
    args.work.mkdir(parents=True, exist_ok=True)
    rows = [check_fold(args.run, args.model, k, method, args.data, args.work)
            for method in methods for k in range(len(folds))]
    text = markdown(rows, f"INT8 check of {args.run.name}/{args.model}, every fold")
    print_and_save(text, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
