"""The INT8 calibration method of each fold chosen on its validation split, then checked on its test fold.

    python scripts/int8_method_on_validation.py RUN [--model mtl_cosa] [--methods minmax,percentile,entropy]
        [--data busi:../shared/data/busi] [--work runs/int8-validation] [-o FILE.md]

scripts/int8_check_folds.py checks each method on the test folds, which may say which method to try but cannot
choose one: a method picked for passing on the test images has seen them. Here each fold's training images are
parted as training parted them (its config.json's validation split, which fitted the temperature and chose the
presence threshold; never the test fold): every method calibrates on the rest (400 images for minmax, 100 for the
histogram methods, as `build-engine` draws them), is checked on the validation split, and the method with the
fewest changes there among those that pass (the stated minmax first on a tie) is the fold's choice. Each engine
is then checked on the fold's test images once, and the table reports the chosen engine's result.

Training side (reads the folds' configs with torch installed); engines are written under --work, not into RUN.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cosa_edge.backends import open_engine
from cosa_edge.config import TrainConfig
from cosa_edge.data import Sample, load_dataset
from cosa_edge.engines.build import build_engine
from cosa_edge.engines.int8 import DEFAULT_CALIBRATION_COUNT, HISTOGRAM_MAX_IMAGES, calibration_from_samples
from cosa_edge.engines.quantized_build import Int8Recipe
from cosa_edge.evaluation.comparison import Fidelity, compare_to_reference
from cosa_edge.fileio import print_and_save


@dataclass(frozen=True)
class MethodResult:
    method: str
    validation: Fidelity
    test: Fidelity

    @staticmethod
    def changes(fidelity: Fidelity) -> int:
        return sum(fidelity.class_flips.values()) + sum(fidelity.presence_flips.values())


def fold_parts(samples: list[Sample], fold: dict[str, Any], config: TrainConfig
               ) -> tuple[list[Sample], list[Sample], list[Sample]]:
    """The fold's calibration pool (training images less the validation split), validation split and test images."""
    from cosa_edge.train.loop import split_validation

    test_names = set(fold["test"])
    training = [s for s in samples if s.name not in test_names]
    test = [s for s in samples if s.name in test_names]
    if len(test) != len(test_names):
        raise SystemExit("folds.json names images that are not in --data: give the data the run was trained on")
    pool, validation = split_validation(training, config)
    return pool, validation, test


def check_method(onnx_path: Path, out: Path, method: str, pool: list[Sample], validation: list[Sample],
                 test: list[Sample]) -> MethodResult:
    with open_engine(onnx_path) as reference:
        size = reference.input_size
    count = DEFAULT_CALIBRATION_COUNT if method == "minmax" else HISTOGRAM_MAX_IMAGES
    recipe = Int8Recipe(calibration_from_samples(pool, size, count, "busi: training images less validation"),
                        check=validation, check_source="the fold's validation split", method=method,
                        accept_accuracy_loss=True)
    out.unlink(missing_ok=True)  # an engine of an earlier run of this script
    built = build_engine(onnx_path, out, target="onnxruntime", precision="int8", int8=recipe)
    with open_engine(onnx_path) as reference, open_engine(out) as candidate:
        on_test = compare_to_reference(reference, candidate, test)
    return MethodResult(method, built.check, on_test)


def choose(results: list[MethodResult]) -> MethodResult:
    """Among the methods that pass on validation, the fewest changes there; none passing: the fewest changes."""
    passing = [r for r in results if not r.validation.failures()] or results
    return min(passing, key=lambda r: MethodResult.changes(r.validation))  # min keeps the first on a tie


def markdown(rows: list[tuple[int, list[MethodResult], MethodResult]], title: str) -> str:
    methods = [r.method for r in rows[0][1]]
    lines = [f"## {title}", "",
             "| fold | " + " | ".join(f"{m}: validation changes (images)" for m in methods)
             + " | chosen on validation | its test changes (class B→M, M→B; presence) | its test check |",
             "|---|" + "---|" * (len(methods) + 3)]
    passed = 0
    for fold, results, chosen in rows:
        cells = [f"{MethodResult.changes(r.validation)} ({r.validation.images})"
                 f"{'' if not r.validation.failures() else ', fails'}" for r in results]
        flips, presence = chosen.test.class_flips, sum(chosen.test.presence_flips.values())
        ok = not chosen.test.failures()
        passed += ok
        lines.append(f"| {fold} | " + " | ".join(cells) + f" | {chosen.method} | {flips['benign_to_malignant']}, "
                     f"{flips['malignant_to_benign']}; {presence} | {'passed' if ok else 'failed'} |")
    lines += ["", f"The engine of the method chosen on validation passes its test check on {passed} of {len(rows)} "
              "folds.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--model", default="mtl_cosa")
    parser.add_argument("--methods", default="minmax,percentile,entropy")
    parser.add_argument("--data", default="busi:../shared/data/busi")
    parser.add_argument("--work", type=Path, default=Path("runs/int8-validation"))
    parser.add_argument("--folds", help="only these folds, comma-separated (default: all)")
    parser.add_argument("-o", "--out", type=Path)
    args = parser.parse_args(argv)
    folds = json.loads((args.run / "folds.json").read_text(encoding="utf-8"))["folds"]
    if args.folds:
        folds = [f for f in folds if str(f["index"]) in args.folds.split(",")]
    samples = load_dataset(args.data, progress=False)
    args.work.mkdir(parents=True, exist_ok=True)
    rows = []
    for fold in folds:
        fold_dir = args.run / args.model / f"fold{fold['index']}"
        config = TrainConfig.from_dict(json.loads((fold_dir / "config.json").read_text(encoding="utf-8"))["config"])
        onnx_path = args.work / f"{args.model}-fold{fold['index']}.onnx"
        if not onnx_path.exists():
            subprocess.run([sys.executable, "-m", "cosa_edge.cli", "export", str(fold_dir / "last.pt"), "-o",
                            str(onnx_path), "--parity-data", "none"], check=True, capture_output=True)
        pool, validation, test = fold_parts(samples, fold, config)
        results = [check_method(onnx_path, args.work / f"{args.model}-fold{fold['index']}.{m}.int8.onnx", m,
                                pool, validation, test) for m in args.methods.split(",")]
        rows.append((fold["index"], results, choose(results)))
        print(f"fold {fold['index']}: chosen {rows[-1][2].method}", file=sys.stderr)
    text = markdown(rows, f"INT8 calibration chosen on validation, {args.run.name}/{args.model}")
    print_and_save(text, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
