"""Issue #23's shortcut control: does lesion presence come from tissue, or from the calipers on lesion images?

    python scripts/shortcut_control.py RUN [--data busi:../shared/data/busi] [--model mtl_cosa] [-o FILE.md]

RUN: a `cosa-edge cv --include-normal` run. For each finished fold, its last.pt (the checkpoint cv scored, with
its presence threshold, chosen on validation) decides presence on its test images three ways:

- as they are, with each image marked as carrying calipers or not (cosa_edge/data/marks.py): presence on lesion
  images with and without calipers, apart (BUSI's normal images carry none);
- with their small saturated marks removed (calipers, digits, text; inpainted), every image alike: a lesion found
  only through its calipers is lost on the images that had them, and not on the others;
- normal images with calipers drawn in (seeded per image): a model that reads calipers finds "lesions" there.

Each fold's per-image decisions go to RUN/shortcut/foldK.json as it finishes (a rerun skips those folds); the
table pools the folds with Wilson 95% intervals and McNemar's exact test on each paired change.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import zlib
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cosa_edge.data import Sample, load_dataset
from cosa_edge.data.marks import draw_calipers, has_calipers, remove_marks
from cosa_edge.fileio import atomic_write_json, print_and_save
from cosa_edge.presence import lesion_present, lesion_share
from cosa_edge.report.paired import mcnemar_accuracy
from cosa_edge.report.pooled import Rate


def presence(model: Any, samples: list[Sample], size: int, min_share: float) -> list[bool]:
    from cosa_edge.train.evaluate import predict

    masks = predict(model, samples, size, "cpu").masks
    if masks is None:
        raise SystemExit("this model draws no masks: presence needs a segmentation model")
    return [lesion_present(lesion_share(mask), min_share) for mask in masks]


def fold_records(run: Path, model_name: str, fold: dict[str, Any], samples: list[Sample]) -> list[dict[str, Any]]:
    """Each test image of ``fold``: lesion or not, calipers or not, presence as it is / marks removed / drawn in."""
    from cosa_edge.train.checkpoint import load_model
    from cosa_edge.train.cv import _fold_indices

    model, checkpoint = load_model(run / model_name / f"fold{fold['index']}" / "last.pt")
    if checkpoint.min_lesion_share is None:
        raise SystemExit(f"fold {fold['index']}'s checkpoint records no presence threshold")
    size, share = checkpoint.config.model.image_size, checkpoint.min_lesion_share
    test = [samples[i] for i in _fold_indices(samples, fold)[1]]
    as_is = presence(model, test, size, share)
    removed = presence(model, [dataclasses.replace(s, image=remove_marks(s.image)) for s in test], size, share)
    normal = [s for s in test if not s.has_lesion]
    # Seeded by the image's name, so that a rerun draws the same calipers whatever the fold order.
    drawn = presence(model, [dataclasses.replace(s, image=draw_calipers(
        s.image, np.random.default_rng(zlib.crc32(s.name.encode())))) for s in normal], size, share)
    drawn_by_name = dict(zip((s.name for s in normal), drawn))
    return [{"name": s.name, "lesion": s.has_lesion, "calipers": has_calipers(s.image), "present": a,
             "present_marks_removed": r, **({"present_calipers_drawn": drawn_by_name[s.name]}
                                             if s.name in drawn_by_name else {})}
            for s, a, r in zip(test, as_is, removed)]


def paired_row(label: str, records: list[dict[str, Any]], before: str, after: str) -> str:
    a = np.array([r[before] for r in records], bool)
    b = np.array([r[after] for r in records], bool)
    if not len(records):
        return f"| {label} | 0 | – | – | – | – |"
    test = mcnemar_accuracy(a, b)
    return (f"| {label} | {len(records)} | {Rate(int(a.sum()), len(a)).cell()} | {Rate(int(b.sum()), len(b)).cell()} | "
            f"{int((a & ~b).sum())}, {int((~a & b).sum())} | {test.p_value:.3g} |")


def markdown(records: list[dict[str, Any]], folds: list[int]) -> str:
    lesion = [r for r in records if r["lesion"]]
    with_calipers = [r for r in lesion if r["calipers"]]
    without = [r for r in lesion if not r["calipers"]]
    normal = [r for r in records if not r["lesion"]]
    return "\n".join([
        f"Test folds {', '.join(map(str, folds))}, pooled: {len(lesion)} lesion images ({len(with_calipers)} with "
        f"calipers), {len(normal)} normal images ({sum(r['calipers'] for r in normal)} with calipers).", "",
        "| images | n | lesion found, as they are | lesion found, after | found → not, not → found | McNemar p |",
        "|---|---|---|---|---|---|",
        paired_row("lesion images with calipers, marks removed", with_calipers, "present", "present_marks_removed"),
        paired_row("lesion images without calipers, marks removed", without, "present", "present_marks_removed"),
        paired_row("normal images, marks removed", normal, "present", "present_marks_removed"),
        paired_row("normal images, calipers drawn in", normal, "present", "present_calipers_drawn"), "",
        "\"Lesion found\" on normal images is 1 - specificity. A model that read calipers would lose lesions on the "
        "first row (and not the second) and find lesions on the last.", ""])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--data", default="busi:../shared/data/busi")
    parser.add_argument("--model", default="mtl_cosa")
    parser.add_argument("-o", "--out", type=Path, help="write the Markdown table here as well")
    args = parser.parse_args(argv)
    folds = json.loads((args.run / "folds.json").read_text(encoding="utf-8"))["folds"]
    finished = [f for f in folds if (args.run / args.model / f"fold{f['index']}" / "metrics.json").is_file()]
    if not finished:
        raise SystemExit(f"{args.run}/{args.model} has no finished fold")
    samples: list[Sample] | None = None
    records: list[dict[str, Any]] = []
    for fold in finished:
        out = args.run / "shortcut" / f"fold{fold['index']}.json"
        if not out.is_file():
            if not (args.run / args.model / f"fold{fold['index']}" / "last.pt").is_file():
                raise SystemExit(f"fold {fold['index']} has no last.pt here (checkpoints stay on the machine that "
                                 "trained them) and no shortcut records yet")
            samples = samples or load_dataset(args.data, progress=False, include_normal=True)
            atomic_write_json(out, fold_records(args.run, args.model, fold, samples))
        records += json.loads(out.read_text(encoding="utf-8"))
    text = markdown(records, [f["index"] for f in finished])
    print_and_save(text, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
