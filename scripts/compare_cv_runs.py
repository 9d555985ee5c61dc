"""Two `cosa-edge cv` runs on the same folds, compared image by image: Dice (Wilcoxon), accuracy (McNemar), AUC
(DeLong), from each fold's predictions.json.

    python scripts/compare_cv_runs.py RUN_A RUN_B [--model mtl_cosa] [--model-b mtl_cosa] [-o paired.md]

Both runs must hold the same folds (their folds.json equal) and every fold's records: a comparison on different
test images would compare the folds, not the models. Used for issue #23 (the pretrained lite preset against the
from-scratch edge model at the same 256 px).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from cosa_edge import BENIGN, NO_LESION
from cosa_edge.fileio import print_and_save
from cosa_edge.report.paired import compare_records, paired_markdown


def fold_records(run: Path, model: str) -> list[dict[str, Any]]:
    """Every test fold's prediction records of ``model`` in ``run``, pooled; an error names what is missing."""
    folds = json.loads((run / "folds.json").read_text(encoding="utf-8"))
    count = len(folds["folds"]) if isinstance(folds, dict) and "folds" in folds else len(folds)
    missing = [k for k in range(count) if not (run / model / f"fold{k}" / "predictions.json").is_file()]
    if missing:
        raise SystemExit(f"{run.name}/{model} has no predictions for folds {missing}: finish its cv run first")
    return [record for k in range(count)
            for record in json.loads((run / model / f"fold{k}" / "predictions.json").read_text(encoding="utf-8"))]


def test_folds(run: Path) -> Any:
    """The test images of each fold, as the run's folds.json lists them."""
    folds = json.loads((run / "folds.json").read_text(encoding="utf-8"))
    return folds["folds"] if isinstance(folds, dict) and "folds" in folds else folds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_a", type=Path)
    parser.add_argument("run_b", type=Path)
    parser.add_argument("--model", default="mtl_cosa", help="the architecture in RUN_A (default mtl_cosa)")
    parser.add_argument("--model-b", help="the architecture in RUN_B (default: --model)")
    parser.add_argument("-o", "--out", type=Path, help="write the Markdown table here as well")
    args = parser.parse_args(argv)
    for run in (args.run_a, args.run_b):
        if not (run / "folds.json").is_file():
            raise SystemExit(f"{run} holds no folds.json: give the --out folder of a `cosa-edge cv` run")
    # The test images of each fold decide; the data spec's spelling (a relative or absolute path) does not.
    if test_folds(args.run_a) != test_folds(args.run_b):
        raise SystemExit("the two runs' folds differ: a paired comparison needs the same test images in each fold")
    model_b = args.model_b or args.model
    tests = compare_records(fold_records(args.run_a, args.model), fold_records(args.run_b, model_b),
                            benign=BENIGN, no_lesion=NO_LESION)
    label_a, label_b = f"{args.run_a.name}/{args.model}", f"{args.run_b.name}/{model_b}"
    markdown = paired_markdown({label_b: tests}, label_a, title=f"Paired comparison: {label_a} against {label_b}")
    print_and_save(markdown, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
