"""Learning curves of a `cosa-edge cv` run: validation DSC and AUC by epoch, one line per fold.

    python scripts/learning_curves.py CV_DIR [--model mtl_cosa] [-o curves.png]

Reads each fold's log.jsonl (the validation split is carved from the training folds, never the test fold), so
the curves say whether a longer budget would still help, without looking at any test image.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cv_dir", type=Path)
    parser.add_argument("--model", default="mtl_cosa")
    parser.add_argument("-o", "--out", type=Path, default=Path("learning_curves.png"))
    args = parser.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (dice_axes, auc_axes) = plt.subplots(1, 2, figsize=(9, 3.6), dpi=110)
    folds = sorted((args.cv_dir / args.model).glob("fold*/log.jsonl"))
    if not folds:
        raise SystemExit(f"no fold logs under {args.cv_dir / args.model}")
    for log in folds:
        records = [json.loads(line) for line in log.read_text().splitlines() if '"val"' in line]
        epochs = [r["epoch"] for r in records]
        dice_axes.plot(epochs, [100 * r["val"]["segmentation"]["DSC"] for r in records], marker=".",
                       label=log.parent.name)
        auc_axes.plot(epochs, [r["val"].get("auc", float("nan")) for r in records], marker=".", label=log.parent.name)
    dice_axes.set(xlabel="epoch", ylabel="validation DSC (%)", title=f"{args.model}: segmentation")
    auc_axes.set(xlabel="epoch", ylabel="validation AUC", title=f"{args.model}: classification")
    auc_axes.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
