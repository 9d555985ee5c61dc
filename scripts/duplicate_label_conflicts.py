"""Near-duplicate images whose labels disagree: the groups cross-validation keeps in one fold (the same 64-bit
perceptual hash within 6 bits, as `cosa-edge cv` groups them) whose members carry different labels.

    python scripts/duplicate_label_conflicts.py busi:../shared/data/busi [-o conflicts.md]

A benign image and a malignant one that are the same scan (or a lesion image and a "normal" one) is a label
error or a second view the labels cannot both be right about; either way no model can be scored right on both.
Issue #23 lists them beside the presence results. Image names only (BUSI's are "class (number)").
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

from cosa_edge import CLASS_NAMES, NO_LESION, NO_LESION_NAME
from cosa_edge.data import load_dataset
from cosa_edge.data.splits import near_duplicate_groups
from cosa_edge.errors import CosaEdgeError
from cosa_edge.fileio import print_and_save


def label_name(label: int) -> str:
    return NO_LESION_NAME if label == NO_LESION else CLASS_NAMES[label]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", help="a data spec, e.g. busi:PATH (its lesion-free images are included)")
    parser.add_argument("-o", "--out", type=Path, help="write the Markdown list here as well")
    args = parser.parse_args(argv)
    try:  # BUSI's and the phantoms' lesion-free images too: a lesion image and a "normal" one can be one scan
        samples = load_dataset(args.data, progress=False, include_normal=args.data.startswith(("busi:", "phantom")))
    except CosaEdgeError as error:
        raise SystemExit(f"error: {error}") from None
    members: dict[int, list[int]] = defaultdict(list)
    for index, group in enumerate(near_duplicate_groups(samples)):
        members[group].append(index)
    grouped = [group for group in members.values() if len(group) > 1]
    conflicting = [group for group in grouped if len({samples[i].label for i in group}) > 1]
    lines = [f"{len(samples)} images, {len(grouped)} near-duplicate groups, {len(conflicting)} with conflicting "
             "labels:", "", "| group | images (label) |", "|---|---|"]
    for number, group in enumerate(conflicting, 1):
        cells = ", ".join(f"{samples[i].name} ({label_name(samples[i].label)})" for i in group)
        lines.append(f"| {number} | {cells} |")
    text = "\n".join(lines) + "\n"
    print_and_save(text, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
