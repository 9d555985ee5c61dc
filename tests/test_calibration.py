"""Temperature scaling recovers a known miscalibration, changes no decision, and lowers the ECE."""

from __future__ import annotations

import numpy as np
import pytest

from cosa_edge.calibration import apply_temperature, calibrate, fit_temperature, reliability


def _overconfident(n: int, temperature: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Labels drawn from calibrated probabilities, reported by a model whose logits are T times too large."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, 1.5, (n, 2))
    true = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    labels = (rng.random(n) < true[:, 1]).astype(int)
    reported = np.exp(logits * temperature)
    return reported / reported.sum(axis=1, keepdims=True), labels


@pytest.mark.parametrize("true_temperature", [0.5, 1.0, 3.0])
def test_fit_recovers_the_temperature(true_temperature: float) -> None:
    probabilities, labels = _overconfident(20000, true_temperature)
    assert fit_temperature(probabilities, labels) == pytest.approx(true_temperature, rel=0.08)


def test_scaling_changes_no_decision_and_lowers_the_ece() -> None:
    probabilities, labels = _overconfident(4000, 3.0, seed=1)
    result = calibrate(probabilities, labels, fitted_on="test")
    scaled = apply_temperature(probabilities, result["temperature"])
    assert (scaled.argmax(axis=1) == probabilities.argmax(axis=1)).all()
    assert np.allclose(scaled.sum(axis=1), 1.0)
    assert result["ece_before"] > 0.1 and result["ece_after"] < 0.03


def test_reliability_of_a_perfectly_calibrated_toy() -> None:
    # Confidence 0.75 in every image, right on exactly 3 of 4: no calibration error.
    probabilities = np.tile([0.25, 0.75], (8, 1))
    labels = np.array([1, 1, 1, 0, 1, 1, 1, 0])
    table = reliability(probabilities, labels)
    assert table["ece"] == pytest.approx(0.0) and len(table["bins"]) == 1 and table["bins"][0]["count"] == 8
    # Always right at confidence 0.75: an error of 0.25.
    assert reliability(probabilities, np.ones(8, int))["ece"] == pytest.approx(0.25)


def test_temperature_one_is_the_identity() -> None:
    probabilities, _ = _overconfident(10, 1.0)
    np.testing.assert_allclose(apply_temperature(probabilities, 1.0), probabilities, rtol=1e-9, atol=1e-12)


def test_a_temperature_is_kept_only_where_it_generalises_within_the_validation_images() -> None:
    """77 validation images (BUSI's per fold): a calibrated model mostly keeps T = 1, which does better on fresh
    images than always applying the fitted T; a model three times too confident keeps its fit."""
    from cosa_edge.calibration import negative_log_likelihood

    kept, fresh_guarded, fresh_always = {1.0: 0, 3.0: 0}, [], []
    draws = 40
    for true_temperature in kept:
        for seed in range(draws):
            probabilities, labels = _overconfident(77, true_temperature, seed=100 + seed)
            result = calibrate(probabilities, labels, fitted_on="validation: 77 lesion images")
            kept[true_temperature] += result["temperature"] != 1.0
            if true_temperature == 1.0:
                fresh, fresh_labels = _overconfident(2000, 1.0, seed=10_000 + seed)
                always = result.get("rejected_temperature", result["temperature"])
                fresh_guarded.append(negative_log_likelihood(apply_temperature(fresh, result["temperature"]),
                                                             fresh_labels))
                fresh_always.append(negative_log_likelihood(apply_temperature(fresh, always), fresh_labels))
            if result["temperature"] == 1.0:
                assert result["fitted_on"].startswith("none: ") and result["ece_after"] == result["ece_before"]
    assert kept[1.0] <= 0.4 * draws and kept[3.0] >= 0.9 * draws, kept
    assert np.mean(fresh_guarded) < np.mean(fresh_always)


def test_the_calibration_record_holds_plain_types_only() -> None:
    """It is stored in checkpoints, which load with weights_only: a numpy scalar there makes them unreadable."""
    def plain(value: object) -> bool:
        if isinstance(value, dict):
            return all(isinstance(k, str) and plain(v) for k, v in value.items())
        return type(value) in (float, int, str, bool)

    for true_temperature in (1.0, 3.0):  # one record that keeps its temperature, one that may not
        for seed in range(3):
            probabilities, labels = _overconfident(77, true_temperature, seed=seed)
            assert plain(calibrate(probabilities, labels, fitted_on="validation"))


def test_a_temperature_at_the_end_of_its_range_is_not_kept() -> None:
    """Validation images the model separates perfectly drive T to the range's floor (the demo fitted T = 0.05 and
    showed "malignancy score 1.00"); the cross-fit alone lets it through, so the range rule refuses it."""
    from cosa_edge.calibration import TEMPERATURE_RANGE, cross_fitted_nll

    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 60)
    confidence = rng.uniform(0.6, 0.9, 60)  # every image on the right side: nothing bounds the sharpening
    probabilities = np.stack([np.where(labels == 0, confidence, 1 - confidence),
                              np.where(labels == 1, confidence, 1 - confidence)], axis=1)
    assert fit_temperature(probabilities, labels) == pytest.approx(TEMPERATURE_RANGE[0], rel=0.01)
    unscaled, scaled = cross_fitted_nll(probabilities, labels)
    assert scaled < unscaled  # what let such a T through before the range rule
    result = calibrate(probabilities, labels, fitted_on="validation: 60 lesion images")
    assert result["temperature"] == 1.0 and result["rejected_temperature"] == pytest.approx(0.05, rel=0.01)
    assert result["fitted_on"].startswith("none: on the validation: 60 lesion images, the fitted temperature")
    assert result["ece_after"] == result["ece_before"]
