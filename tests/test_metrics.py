import numpy as np
import pytest

from cosa_edge import BENIGN, MALIGNANT
from cosa_edge.metrics import (auc, classification_metrics, clinical_metrics, mean_segmentation_metrics, roc_curve,
                               segmentation_metrics_one)


def _masks() -> tuple[np.ndarray, np.ndarray]:
    """Truth: 4x5 = 20 pixels. Prediction: 4x4 = 16 pixels, 12 of them inside the truth, in a 10x10 image."""
    truth = np.zeros((10, 10), bool)
    truth[2:6, 2:7] = True
    pred = np.zeros((10, 10), bool)
    pred[3:7, 3:7] = True
    return pred, truth


def test_segmentation_metrics_by_hand() -> None:
    pred, truth = _masks()
    m = segmentation_metrics_one(pred, truth)
    # |Am∩Ag| = rows 3..5 x cols 3..6 = 3*4 = 12; |Am| = 16; |Ag| = 20; |Am∪Ag| = 24.
    assert m["TPR"] == pytest.approx(12 / 20)
    assert m["FPR"] == pytest.approx((24 - 20) / 20)
    assert m["AER"] == pytest.approx((24 - 12) / 20)
    assert m["DSC"] == pytest.approx(2 * 12 / 36)
    # background IoU: (100 - 24) / (100 - 12)
    assert m["mIoU"] == pytest.approx((12 / 24 + 76 / 88) / 2)


def test_aer_identity_holds_as_in_the_papers_table1() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        truth = rng.random((16, 16)) < 0.3
        pred = rng.random((16, 16)) < 0.4
        if not truth.any():
            continue
        m = segmentation_metrics_one(pred, truth)
        assert m["AER"] == pytest.approx(m["FPR"] + 1 - m["TPR"])
    # The published rows obey it too (MTL-COSA on BUSI: 59.15 ≈ 37.01 + 100 − 77.85 within rounding).
    assert 37.01 + 100 - 77.85 == pytest.approx(59.15, abs=0.02)


def test_fpr_and_aer_can_exceed_one() -> None:
    truth = np.zeros((10, 10), bool)
    truth[0, 0] = True
    pred = np.ones((10, 10), bool)
    m = segmentation_metrics_one(pred, truth)
    assert m["FPR"] == pytest.approx(99.0) and m["AER"] == pytest.approx(99.0)


def test_images_without_lesion_are_left_out_of_tpr_and_counted() -> None:
    pred, truth = _masks()
    empty = np.zeros_like(truth)
    per_image = [segmentation_metrics_one(pred, truth), segmentation_metrics_one(empty, empty)]
    mean = mean_segmentation_metrics(per_image)
    assert mean["TPR"] == pytest.approx(0.6)  # the empty image does not pull TPR down
    assert mean["images_without_lesion"] == 1
    assert mean["DSC"] == pytest.approx((24 / 36 + 1.0) / 2)


def test_paper_table2_reproduces_only_with_benign_positive() -> None:
    """BUSI: 437 benign, 210 malignant; the paper's TPR 92.20 and FPR 10.00 give its PRE and F1."""
    tp = round(0.922 * 437)
    fp = round(0.10 * 210)
    labels = np.array([BENIGN] * 437 + [MALIGNANT] * 210)
    predicted = np.array([BENIGN] * tp + [MALIGNANT] * (437 - tp) + [BENIGN] * fp + [MALIGNANT] * (210 - fp))
    paper_way = classification_metrics(labels, predicted, positive=BENIGN)
    assert paper_way["PRE"] * 100 == pytest.approx(95.05, abs=0.05)
    assert paper_way["F1"] * 100 == pytest.approx(93.59, abs=0.05)
    assert paper_way["ACC"] * 100 == pytest.approx(91.48, abs=0.05)
    malignant_way = classification_metrics(labels, predicted, positive=MALIGNANT)
    assert malignant_way["PRE"] * 100 != pytest.approx(95.05, abs=1.0)
    clinical = clinical_metrics(labels, predicted)
    assert clinical["sensitivity"] == pytest.approx((210 - fp) / 210)
    assert clinical["specificity"] == pytest.approx(tp / 437)


def test_roc_and_auc_on_known_scores() -> None:
    labels = np.array([BENIGN, BENIGN, MALIGNANT, BENIGN, MALIGNANT])
    benign_scores = np.array([0.9, 0.8, 0.7, 0.6, 0.2])
    fpr, tpr, _ = roc_curve(labels, benign_scores, positive=BENIGN)
    assert list(tpr) == pytest.approx([0, 1 / 3, 2 / 3, 2 / 3, 1, 1])
    assert list(fpr) == pytest.approx([0, 0, 0, 0.5, 0.5, 1])
    # Pairs (benign, malignant) ranked correctly: 5 of 6.
    assert auc(fpr, tpr) == pytest.approx(5 / 6)


def test_auc_counts_ties_as_half() -> None:
    labels = np.array([BENIGN, MALIGNANT])
    fpr, tpr, _ = roc_curve(labels, np.array([0.5, 0.5]), positive=BENIGN)
    assert auc(fpr, tpr) == pytest.approx(0.5)


def test_the_one_auc_scorer_gives_the_malignant_class_the_same_area() -> None:
    """class_auc takes benign as positive (the paper's Table 2); the engines' scorer used to take malignant: the
    two must agree wherever the probabilities sum to one, ties included."""
    from cosa_edge.metrics import class_auc

    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 200)
    malignant = np.round(rng.random(200) * 0.6 + 0.4 * labels, 1).astype(np.float32)  # rounded: many ties
    probabilities = np.stack([1.0 - malignant, malignant], axis=1)
    fpr, tpr, _ = roc_curve(labels, malignant, positive=MALIGNANT)
    assert class_auc(labels, probabilities) == pytest.approx(auc(fpr, tpr), abs=1e-12)
    assert 0.7 < class_auc(labels, probabilities) < 1.0  # informative scores, so a swapped class would show (1 - AUC)
    assert class_auc(labels, probabilities[:, ::-1]) == pytest.approx(1 - auc(fpr, tpr), abs=1e-12)


def test_the_mask_at_source_size_is_bilinear_then_thresholded() -> None:
    from cosa_edge.evaluation.masks import mask_at_size, probability_at_size

    probability = np.array([[0.0, 1.0], [0.0, 1.0]], np.float32)
    wide = probability_at_size(probability, (2, 8))
    assert wide.shape == (2, 8) and wide.dtype == np.float32
    assert np.all(np.diff(wide[0]) >= 0) and 0.0 < wide[0, 3] < 1.0  # interpolated, not nearest
    assert mask_at_size(probability, (2, 8))[0].tolist() == (wide[0] > 0.5).tolist()
    assert mask_at_size(probability, (2, 8))[0].sum() == 4  # the right half
