"""Stratified k-fold splits, optionally keeping near-duplicate images in the same fold.

BUSI holds near-duplicates (the same lesion saved twice, or cropped slightly
differently). A random split can put one copy in training and the other in
testing, which flatters the test score; grouping them by perceptual hash
prevents that.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..errors import CosaEdgeError
from .sample import Sample


@dataclass(frozen=True)
class Fold:
    index: int
    train: list[int]
    test: list[int]


def perceptual_hash(image: np.ndarray) -> int:
    """64-bit DCT hash: the signs of the 8x8 lowest frequencies of a 32x32 thumbnail against their median."""
    thumb = cv2.resize(image, (32, 32), interpolation=cv2.INTER_AREA).astype(np.float32)
    low = cv2.dct(thumb)[:8, :8].flatten()
    bits = low > np.median(low[1:])
    return int(sum(1 << i for i, bit in enumerate(bits) if bit))


def near_duplicate_groups(samples: list[Sample], max_distance: int = 6) -> list[int]:
    """A group id per sample; samples whose hashes differ in at most ``max_distance`` bits share one."""
    hashes = np.array([perceptual_hash(s.image) for s in samples], dtype=np.uint64)
    parent = list(range(len(samples)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(len(samples)):
        xor = hashes[i] ^ hashes[i + 1:]
        distances = np.unpackbits(xor.view(np.uint8).reshape(-1, 8), axis=1).sum(axis=1)
        for j in np.flatnonzero(distances <= max_distance) + i + 1:
            parent[find(int(j))] = find(i)
    roots = [find(i) for i in range(len(samples))]
    renumber = {root: k for k, root in enumerate(dict.fromkeys(roots))}
    return [renumber[r] for r in roots]


def stratified_folds(labels: list[int], k: int = 5, seed: int = 0, groups: list[int] | None = None) -> list[Fold]:
    """``k`` folds whose class ratio matches the whole set's; members of one group never straddle folds.

    Without groups every sample is its own group. Groups are dealt to folds
    largest first, each to the fold that most lacks that group's class, which
    keeps fold sizes and class ratios within a group's size of even.
    """
    n = len(labels)
    if k < 2:
        raise CosaEdgeError(f"cross-validation needs at least 2 folds, not {k}")
    if n < k:
        raise CosaEdgeError(f"cannot split {n} images into {k} folds; use more images or fewer folds")
    groups = list(range(n)) if groups is None else list(groups)
    rng = np.random.default_rng(seed)
    members: dict[int, list[int]] = {}
    for index, group in enumerate(groups):
        members.setdefault(group, []).append(index)
    group_ids = list(members)
    rng.shuffle(group_ids)
    group_ids.sort(key=lambda g: -len(members[g]))  # stable: ties keep the shuffled order
    n_classes = max(labels) + 1
    target = np.bincount(labels, minlength=n_classes) / k
    counts = np.zeros((k, n_classes))
    assigned: list[list[int]] = [[] for _ in range(k)]
    for group in group_ids:
        group_labels = np.bincount([labels[i] for i in members[group]], minlength=n_classes)
        deficit = ((target - counts) * group_labels).sum(axis=1) - counts.sum(axis=1) * 1e-6
        fold = int(np.argmax(deficit))
        counts[fold] += group_labels
        assigned[fold].extend(members[group])
    folds = []
    for index in range(k):
        test = sorted(assigned[index])
        test_set = set(test)
        folds.append(Fold(index=index, train=[i for i in range(n) if i not in test_set], test=test))
    return folds


def stratified_holdout(labels: list[int], fraction: float, seed: int = 0,
                       groups: list[int] | None = None) -> tuple[list[int], list[int]]:
    """(train, validation) indices with ``fraction`` of each class held out; members of one group stay together.

    A group (near-duplicate images) goes to one side whole, so that no validation image has a near-copy in
    training: a validation split with such copies is easier than new patients, and what is chosen on it (the
    presence threshold, the temperature, the out-of-distribution threshold) would be tuned to the wrong images.
    A group counts for the class most of its members have. Without groups every index is its own group, and
    the split is the plain stratified one.
    """
    rng = np.random.default_rng(seed)
    groups = list(range(len(labels))) if groups is None else list(groups)
    members: dict[int, list[int]] = {}
    for index, group in enumerate(groups):
        members.setdefault(group, []).append(index)
    by_class: dict[int, list[int]] = {}
    for group, indices in members.items():
        label = Counter(labels[i] for i in indices).most_common(1)[0][0]
        by_class.setdefault(label, []).append(group)
    validation: list[int] = []
    for label in sorted(by_class):
        group_ids = by_class[label]
        rng.shuffle(group_ids)
        wanted = int(round(sum(len(members[g]) for g in group_ids) * fraction))
        held = 0
        for group in group_ids:
            if held >= wanted:
                break
            if held + len(members[group]) <= wanted:  # a group too big for what is left waits for smaller ones
                validation.extend(members[group])
                held += len(members[group])
    held_out = set(validation)
    return [i for i in range(len(labels)) if i not in held_out], sorted(validation)


def parse_split(text: str) -> tuple[Path, int]:
    """``FOLDS.json:K`` (as --split writes it) -> (the folds file, the fold's index)."""
    path, _, index = text.rpartition(":")
    if not path or not index.isdigit():
        raise CosaEdgeError(f"--split {text!r} must be FOLDS.json:K, e.g. runs/cv/folds.json:0")
    return Path(path), int(index)


def fold_part(samples: list[Sample], folds_file: Path, index: int, part: str) -> list[Sample]:
    """The training ("train") or test ("test") images of fold ``index`` of a `cosa-edge cv` folds.json."""
    import json

    folds_file = Path(folds_file)
    if not folds_file.is_file():
        raise CosaEdgeError(f"{folds_file} does not exist; --split takes the folds.json that `cosa-edge cv` wrote")
    try:
        folds = json.loads(folds_file.read_text())["folds"]
        test = set(next(f for f in folds if f["index"] == index)["test"])
    except (json.JSONDecodeError, KeyError, TypeError):
        raise CosaEdgeError(f"{folds_file} is not a `cosa-edge cv` folds.json") from None
    except StopIteration:
        raise CosaEdgeError(f"{folds_file} has no fold {index} (it holds folds 0-{len(folds) - 1})") from None
    names = {s.name for s in samples}
    if not test <= names:
        raise CosaEdgeError(f"{folds_file} names images that are not in this data set; give the data the folds were "
                            "made from")
    chosen = [s for s in samples if (s.name in test) == (part == "test")]
    if not chosen:
        raise CosaEdgeError(f"fold {index} of {folds_file} has no {part} images in this data set")
    return chosen
