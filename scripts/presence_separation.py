#!/usr/bin/env python3
"""How well a cross-validation's masks can tell lesion-free images from lesion images, whatever the threshold.

    python3 scripts/presence_separation.py RUN_DIR [--data busi:../shared/data/busi] [--model mtl_cosa]

For each finished fold of ``cosa-edge cv --include-normal ... --out RUN_DIR``, its last checkpoint is run on its
test fold, plain and with a horizontal-flip test-time augmentation (the mean of the two lesion probability
maps), and two presence scores are taken per image: the predicted mask's share of the image (what
cosa_edge.presence decides on) and the mean lesion probability of its most lesion-like 0.5% of pixels (what
the training's presence term scores). For each it prints the AUC of lesion against lesion-free images and
the *oracle* specificity: that of the threshold chosen on the test fold itself to keep 95% of its lesions.
The oracle is an upper bound for any threshold chosen on validation data; issue #9's target needs 90%.

Training side (torch); a diagnostic, not part of the package. Prints one JSON line per fold and score.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cosa_edge.data import load_dataset
from cosa_edge.data.preprocess import preprocess
from cosa_edge.metrics import auc, roc_curve
from cosa_edge.presence import TARGET_SENSITIVITY, lesion_share
from cosa_edge.train.checkpoint import load_model
from cosa_edge.train.cv import _fold_indices
from cosa_edge.train.losses import PRESENCE_TOP_SHARE


def lesion_maps(model: torch.nn.Module, images: list[np.ndarray], size: int, flip: bool) -> list[np.ndarray]:
    """Each image's lesion probability at the model's input size (with ``flip``, averaged with its mirror's)."""
    maps: list[np.ndarray] = []
    with torch.no_grad():
        for start in range(0, len(images), 16):
            batch = torch.from_numpy(np.stack([preprocess(image, size) for image in images[start:start + 16]]))
            probability = torch.softmax(model(batch)["seg_logits"].float(), dim=1)[:, 1]
            if flip:
                mirrored = torch.softmax(model(torch.flip(batch, [-1]))["seg_logits"].float(), dim=1)[:, 1]
                probability = (probability + torch.flip(mirrored, [-1])) / 2
            maps.extend(probability.numpy())
    return maps


def oracle_specificity(scores: np.ndarray, has_lesion: np.ndarray) -> float:
    """Specificity at the highest threshold that keeps TARGET_SENSITIVITY of the lesions (chosen on these very
    images)."""
    lesions = np.sort(scores[has_lesion])
    threshold = lesions[len(lesions) - int(np.ceil(TARGET_SENSITIVITY * len(lesions)))]
    return float((scores[~has_lesion] < threshold).mean())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--data", default="busi:../shared/data/busi")
    parser.add_argument("--model", default="mtl_cosa")
    parser.add_argument("--plot", type=Path, help="draw each fold's two presence ROC curves (no augmentation), "
                        "its operating point and issue #9's target region into this PNG")
    args = parser.parse_args()
    curves: dict[tuple[int, str], tuple[np.ndarray, np.ndarray]] = {}
    operating: dict[int, tuple[float, float]] = {}
    folds = json.loads((args.run_dir / "folds.json").read_text())["folds"]
    samples = load_dataset(args.data, progress=False, include_normal=True)
    for fold in folds:
        checkpoint = args.run_dir / args.model / f"fold{fold['index']}" / "last.pt"
        if not (checkpoint.parent / "metrics.json").exists():
            continue  # not finished
        model, trained = load_model(checkpoint)
        config = trained.config
        model.eval()
        test = [samples[i] for i in _fold_indices(samples, fold)[1]]
        has_lesion = np.array([s.has_lesion for s in test], bool)
        presence = json.loads((checkpoint.parent / "metrics.json").read_text()).get("presence", {})
        if presence.get("sensitivity") is not None and presence.get("specificity") is not None:
            operating[fold["index"]] = (1 - presence["specificity"], presence["sensitivity"])
        for flip in (False, True):
            maps = lesion_maps(model, [s.image for s in test], config.model.image_size, flip)
            top = max(1, int(round(PRESENCE_TOP_SHARE * maps[0].size)))  # as train/loop.py presence_loss counts
            scores = {"mask share": np.array([lesion_share(m > 0.5) for m in maps]),
                      "top 0.5% mean": np.array([np.sort(m.ravel())[-top:].mean() for m in maps])}
            for name, values in scores.items():
                # metrics.roc_curve scores the "positive" class: here a lesion (1) against none (0).
                fpr, tpr, _ = roc_curve(has_lesion.astype(int), values, positive=1)
                if not flip:
                    curves[(fold["index"], name)] = (fpr, tpr)
                print(json.dumps({"fold": fold["index"], "flip_tta": flip, "score": name,
                                  "lesion_images": int(has_lesion.sum()),
                                  "lesion_free_images": int((~has_lesion).sum()),
                                  "auc": round(auc(fpr, tpr), 4),
                                  "oracle_specificity_at_95_sensitivity":
                                      round(oracle_specificity(values, has_lesion), 4)}),
                      flush=True)
    if args.plot and curves:
        plot_presence_curves(curves, operating, args.plot, f"Lesion presence, test folds ({args.run_dir.name})")
    return 0


#: Issue #9's target: specificity at least 90% with sensitivity at least 93%.
GOAL_SPECIFICITY, GOAL_SENSITIVITY = 0.90, 0.93


def plot_presence_curves(curves: dict[tuple[int, str], tuple[np.ndarray, np.ndarray]],
                         operating: dict[int, tuple[float, float]], path: Path, title: str) -> None:
    """Each fold's ROC of lesion against lesion-free images for both scores, the fold's operating point (its
    validation-chosen threshold on the test fold) and the target region a point must reach."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from cosa_edge.report.figures import save_png

    figure, axes = plt.subplots(figsize=(5.5, 5), dpi=120)
    axes.fill_between([0, 1 - GOAL_SPECIFICITY], GOAL_SENSITIVITY, 1.0, color="#009E73", alpha=0.2,
                      label=f"target: specificity ≥ {GOAL_SPECIFICITY:.0%}, sensitivity ≥ {GOAL_SENSITIVITY:.0%}")
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for (fold, name), (fpr, tpr) in sorted(curves.items()):
        colour = colours[fold % len(colours)]
        axes.plot(fpr, tpr, color=colour, linestyle="-" if name == "mask share" else "--",
                  label=f"fold {fold}, {name} (AUC {auc(fpr, tpr):.2f})")
    for fold, (fpr, tpr) in sorted(operating.items()):
        axes.plot([fpr], [tpr], marker="o", color=colours[fold % len(colours)], markeredgecolor="black")
    axes.set(xlabel="1 - specificity (lesion-free images called lesion)",
             ylabel="sensitivity (lesion images that keep their lesion)", title=title, xlim=(0, 1), ylim=(0, 1.01))
    axes.legend(loc="lower right", fontsize=7)
    save_png(figure, path)


if __name__ == "__main__":
    sys.exit(main())
