"""Pooled figures with their intervals (cosa_edge/report/pooled.py), against values worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from cosa_edge.calibration import TEMPERATURE_RANGE, apply_temperature, reliability
from cosa_edge.report.pooled import (Rate, pooled_calibration, pooled_presence, presence_markdown, presence_rates,
                                     wilson_interval)


def test_wilson_interval_matches_the_formula_s_known_values() -> None:
    # 0 of 10: the upper bound is z^2 / (n + z^2); 5 of 10 is symmetric about one half.
    low, high = wilson_interval(0, 10)
    assert low == 0.0 and high == pytest.approx(3.8414588 / 13.8414588, abs=1e-6)
    assert wilson_interval(5, 10) == pytest.approx((0.2365931, 0.7634069), abs=1e-6)
    assert wilson_interval(10, 10)[1] == 1.0 and wilson_interval(10, 10)[0] == pytest.approx(1 - high, abs=1e-9)
    assert all(np.isnan(wilson_interval(0, 0)))
    with pytest.raises(ValueError):
        wilson_interval(11, 10)


def test_presence_is_pooled_from_each_fold_s_counts() -> None:
    folds = [{"presence": {"lesion_images": 130, "lesion_free_images": 26, "sensitivity": 124 / 130,
                           "specificity": 22 / 26}},
             {"presence": {"lesion_images": 129, "lesion_free_images": 27, "sensitivity": 1.0,
                           "specificity": 20 / 27}},
             {"segmentation": {}}]  # a fold without lesion-free images is left out
    assert presence_rates(folds[0]["presence"]) == (Rate(124, 130), Rate(22, 26))
    pooled = pooled_presence(folds)
    assert pooled is not None and len(pooled["per_fold"]) == 2
    sensitivity, specificity = pooled["pooled"]
    assert (sensitivity.successes, sensitivity.trials) == (253, 259)
    assert (specificity.successes, specificity.trials) == (42, 53)
    assert specificity.interval == pytest.approx(wilson_interval(42, 53))
    table = presence_markdown("MTL-COSA", pooled)
    assert table[-1].startswith("| **pooled** | **97.7 (") and "42/53" in table[-1]
    assert pooled_presence([{"segmentation": {}}]) is None


def test_pooled_ece_applies_each_fold_s_temperature_and_the_range_rule() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 200)
    # Overconfident: right 80% of the time, always 99% sure.
    right = rng.random(200) < 0.8
    malignant = np.where(right == (labels == 1), 0.99, 0.01)
    records = [{"name": str(i), "label": int(label), "probabilities": [1 - m, m]}
               for i, (label, m) in enumerate(zip(labels, malignant))]
    records.append({"name": "normal", "label": -1})  # lesion-free: no class, left out
    half = len(records) // 2
    result = pooled_calibration([(records[:half], 3.0), (records[half:], TEMPERATURE_RANGE[0])])
    assert result is not None and result["images"] == 200 and result["temperatures_kept"] == 1
    probabilities = np.array([r["probabilities"] for r in records if r["label"] >= 0])
    first = len([r for r in records[:half] if r["label"] >= 0])
    expected_after = np.concatenate([apply_temperature(probabilities[:first], 3.0), probabilities[first:]])
    assert result["ece_before"] == pytest.approx(reliability(probabilities, labels)["ece"])
    assert result["ece_after"] == pytest.approx(reliability(expected_after, labels)["ece"])
    assert result["ece_after"] < result["ece_before"]  # the kept temperature helped; the floor's was not applied


def test_cv_tables_carry_the_pooled_sections(tmp_path) -> None:  # noqa: ANN001
    """write_tables appends presence pooled with intervals, and the pooled ECE where prediction records exist."""
    import json

    from cosa_edge.report.tables import write_tables

    presence = {"lesion_images": 4, "lesion_free_images": 2, "sensitivity": 0.75, "specificity": 0.5}
    folds = [{"presence": presence, "calibration": {"temperature": 2.0}}] * 2
    for index in range(2):
        fold_dir = tmp_path / "mtl_cosa" / f"fold{index}"
        fold_dir.mkdir(parents=True)
        records = [{"name": "a", "label": 0, "probabilities": [0.9, 0.1]},
                   {"name": "b", "label": 1, "probabilities": [0.6, 0.4]}]
        (fold_dir / "predictions.json").write_text(json.dumps(records))
    write_tables({"mtl_cosa": {"folds": folds, "aggregate": {}}}, "phantom:8", tmp_path)
    markdown = (tmp_path / "tables.md").read_text(encoding="utf-8")
    assert "### Lesion presence pooled over folds" in markdown and "6/8" in markdown and "2/4" in markdown
    assert "### Calibration pooled over folds" in markdown and "| MTL-COSA | 4 |" in markdown
