from __future__ import annotations

import numpy as np
import pytest

from cosa_edge.data.phantom import make_phantom_dataset
from cosa_edge.data.sample import Sample
from cosa_edge.data.splits import near_duplicate_groups, stratified_folds, stratified_holdout
from cosa_edge.errors import CosaEdgeError


def test_folds_partition_and_keep_class_ratio() -> None:
    labels = [0] * 437 + [1] * 210
    folds = stratified_folds(labels, k=5, seed=0)
    tests = [i for f in folds for i in f.test]
    assert sorted(tests) == list(range(647))
    for fold in folds:
        assert set(fold.train).isdisjoint(fold.test)
        malignant = sum(labels[i] for i in fold.test)
        assert malignant in (42,) and len(fold.test) in (129, 130)


def test_groups_never_straddle_folds() -> None:
    rng = np.random.default_rng(0)
    labels = list(rng.integers(0, 2, 100))
    groups = [i // 3 for i in range(100)]
    folds = stratified_folds(labels, k=5, seed=1, groups=groups)
    for fold in folds:
        test_groups = {groups[i] for i in fold.test}
        assert test_groups.isdisjoint({groups[i] for i in fold.train})


def test_near_duplicates_are_grouped() -> None:
    samples = make_phantom_dataset(6, seed=4, size=(64, 64))
    copy = samples[2]
    brighter = np.clip(copy.image.astype(int) + 3, 0, 255).astype(np.uint8)
    samples.append(Sample(name="copy", image=brighter, mask=copy.mask, label=copy.label))
    groups = near_duplicate_groups(samples)
    assert groups[2] == groups[6]
    assert len(set(groups)) == 6


def test_bad_fold_counts() -> None:
    with pytest.raises(CosaEdgeError, match="at least 2 folds"):
        stratified_folds([0, 1, 0], k=1)
    with pytest.raises(CosaEdgeError, match="cannot split 3 images into 5 folds"):
        stratified_folds([0, 1, 0], k=5)


def test_holdout_is_stratified() -> None:
    train, val = stratified_holdout([0] * 80 + [1] * 20, 0.25, seed=0)
    assert len(val) == 25 and sum(1 for i in val if i >= 80) == 5
    assert sorted(train + val) == list(range(100))


def test_holdout_keeps_near_duplicates_on_one_side() -> None:
    """Groups of near-duplicates go whole to training or to validation; the class shares still hold."""
    labels = [0] * 80 + [1] * 20
    groups = [i // 4 for i in range(100)]  # 25 groups of 4 (a group never mixes classes here)
    train, val = stratified_holdout(labels, 0.25, seed=3, groups=groups)
    assert sorted(train + val) == list(range(100))
    held = {groups[i] for i in val}
    assert not held & {groups[i] for i in train}
    assert len(val) == 25 - 1 and sum(1 for i in val if i >= 80) == 4  # 5 of 20 would split a group: 4 kept
    # Without groups (or with every image its own group) it is the plain stratified split, unchanged.
    assert stratified_holdout(labels, 0.25, seed=3) == stratified_holdout(labels, 0.25, seed=3, groups=list(range(100)))
