"""Paired statistics on cases whose answers are known by hand or by an independent brute-force computation."""

from __future__ import annotations

import numpy as np
import pytest

from cosa_edge.errors import CosaEdgeError
from cosa_edge.report.paired import _midranks, delong_auc, delong_components, mcnemar_accuracy, wilcoxon_dice


def test_mcnemar_counts_only_the_discordant_images() -> None:
    # 10 images only A gets right, 2 only B, 30 both, 8 neither: exact two-sided p = 2 * P(X <= 2 | 12, 1/2).
    a = np.array([1] * 10 + [0] * 2 + [1] * 30 + [0] * 8, bool)
    b = np.array([0] * 10 + [1] * 2 + [1] * 30 + [0] * 8, bool)
    test = mcnemar_accuracy(a, b)
    assert test.p_value == pytest.approx(2 * (1 + 12 + 66) / 4096)
    assert test.difference == pytest.approx(8 / 50) and test.real
    assert mcnemar_accuracy(a, a).p_value == 1.0  # no disagreement, nothing to test


def test_wilcoxon_on_five_positive_differences_is_two_in_thirty_two() -> None:
    test = wilcoxon_dice(np.array([0.6, 0.7, 0.8, 0.9, 1.0]), np.array([0.5, 0.5, 0.5, 0.5, 0.5]))
    assert test.p_value == pytest.approx(2 / 32) and not test.real  # n = 5 cannot reach 0.05 two-sided
    assert wilcoxon_dice(np.ones(4), np.ones(4)).p_value == 1.0
    with pytest.raises(CosaEdgeError, match="same images"):
        wilcoxon_dice(np.ones(3), np.ones(4))


def _brute_force(positive: np.ndarray, negative: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    wins = (positive[:, None] > negative[None, :]) + 0.5 * (positive[:, None] == negative[None, :])
    return float(wins.mean()), wins.mean(axis=1), wins.mean(axis=0)


def test_midranks_and_structural_components_match_a_brute_force_count() -> None:
    np.testing.assert_array_equal(_midranks(np.array([3.0, 1.0, 3.0, 2.0])), [3.5, 1.0, 3.5, 2.0])
    rng = np.random.default_rng(0)
    positive = np.round(rng.normal(1, 1, 37), 1)  # rounded: ties, which count half
    negative = np.round(rng.normal(0, 1, 23), 1)
    auc, v10, v01 = delong_components(positive, negative)
    want_auc, want_v10, want_v01 = _brute_force(positive, negative)
    assert auc == pytest.approx(want_auc)
    np.testing.assert_allclose(v10, want_v10)
    np.testing.assert_allclose(v01, want_v01)


def test_delong_variance_matches_its_definition_and_the_test_is_symmetric() -> None:
    rng = np.random.default_rng(1)
    labels = np.array([1] * 40 + [0] * 30)
    truth = labels + rng.normal(0, 1.2, labels.size)
    a, b = truth + rng.normal(0, 0.3, labels.size), truth + rng.normal(0, 0.9, labels.size)
    test = delong_auc(labels, a, b)
    # The variance of AUC(a) - AUC(b) written out from the components (DeLong et al. 1988, eq. of S10/S01).
    _, pa, na = _brute_force(a[labels == 1], a[labels == 0])
    _, pb, nb = _brute_force(b[labels == 1], b[labels == 0])
    def cov(x: np.ndarray, y: np.ndarray) -> float:
        return float(((x - x.mean()) * (y - y.mean())).sum() / (len(x) - 1))
    variance = (cov(pa, pa) + cov(pb, pb) - 2 * cov(pa, pb)) / 40 + (cov(na, na) + cov(nb, nb) - 2 * cov(na, nb)) / 30
    assert test.statistic == pytest.approx(test.difference / np.sqrt(variance))
    swapped = delong_auc(labels, b, a)
    assert swapped.statistic == pytest.approx(-test.statistic) and swapped.p_value == pytest.approx(test.p_value)
    assert delong_auc(labels, a, a).p_value == 1.0


def test_delong_rejects_at_its_level_under_the_null_and_finds_a_real_difference() -> None:
    rng = np.random.default_rng(2)
    labels = np.array([1] * 60 + [0] * 60)
    rejections = 0
    for _ in range(300):  # two equally good, correlated models: p should be uniform, so ~5% below 0.05
        truth = labels + rng.normal(0, 1, labels.size)
        rejections += delong_auc(labels, truth + rng.normal(0, 0.7, labels.size),
                                 truth + rng.normal(0, 0.7, labels.size)).p_value < 0.05
    assert 0.02 <= rejections / 300 <= 0.09
    truth = labels + rng.normal(0, 0.5, labels.size)
    better = delong_auc(labels, truth, truth + rng.normal(0, 2.0, labels.size))
    assert better.difference > 0.1 and better.p_value < 1e-3 and better.real
    with pytest.raises(CosaEdgeError, match="two images of each class"):
        delong_auc(np.array([1, 1, 0]), np.ones(3), np.ones(3))


def test_records_are_paired_by_image_name_and_each_metric_gets_its_test(tmp_path) -> None:  # noqa: ANN001
    import json

    pytest.importorskip("torch")  # cosa_edge.train.cv is the training side
    from cosa_edge.train.cv import write_paired_comparisons

    rng = np.random.default_rng(3)
    names = [f"img{i}" for i in range(40)]
    labels = rng.integers(0, 2, 40)

    def records(noise: float, dice_shift: float) -> list[dict]:
        out = []
        for name, label in zip(names, labels):
            benign = float(np.clip((label == 0) * 0.6 + 0.2 + rng.normal(0, noise), 0.01, 0.99))
            out.append({"name": name, "label": int(label), "probabilities": [benign, 1 - benign],
                        "dice": float(np.clip(0.7 + dice_shift + rng.normal(0, 0.05), 0, 1))})
        out.append({"name": "normal1", "label": -1, "probabilities": [0.5, 0.5]})  # lesion-free: no class, no Dice
        return out
    cosa, mtl = records(0.1, 0.1), records(0.1, 0.0)
    folds = [{"index": 0}, {"index": 1}]
    for architecture, recs in (("mtl_cosa", cosa), ("mtl", mtl)):
        for fold in folds:  # shuffled order within the folds: pairing goes by name
            part = recs[fold["index"]::2]
            (tmp_path / architecture / f"fold{fold['index']}").mkdir(parents=True)
            (tmp_path / architecture / f"fold{fold['index']}" / "predictions.json").write_text(json.dumps(part[::-1]))
    files = write_paired_comparisons(tmp_path, ["mtl_cosa", "mtl"], folds)
    result = json.loads((tmp_path / "paired.json").read_text())["mtl"]
    assert [t["metric"] for t in result] == ["DSC (per image)", "ACC", "AUC"]
    assert [t["n"] for t in result] == [40, 40, 40]  # the lesion-free image is in none of them
    dice = result[0]
    assert dice["difference"] == pytest.approx(0.1, abs=0.03) and dice["real_at_alpha"]
    assert "| mtl | DSC (per image) | 40 |" in (tmp_path / "paired.md").read_text() and len(files) == 2
    assert write_paired_comparisons(tmp_path, ["mtl_cosa", "resnet"], folds) == []  # nothing to compare
