"""Lesion presence and calibration in the cross-validation report: aggregate, tables, reliability diagram."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cosa_edge.calibration import apply_temperature, reliability
from cosa_edge.report.reliability import fold_reliabilities, plot_reliability, pool_reliability
from cosa_edge.report.tables import aggregate, presence_target, write_tables

PRESENCE_TITLE = "Lesion presence per image (normal images against lesion images)"
CALIBRATION_TITLE = "Calibration of the class probabilities (test folds, lesion images)"


def _old_fold(acc: float = 0.8) -> dict[str, Any]:
    """Fold metrics as written before presence and calibration existed."""
    return {"segmentation": {"TPR": 0.8, "FPR": 0.3, "mIoU": 0.8, "DSC": 0.7, "AER": 0.5},
            "classification_paper": {"TPR": 0.9, "FPR": 0.2, "ACC": acc, "PRE": 0.9, "F1": 0.9},
            "classification_clinical": {"sensitivity": 0.8, "specificity": 0.9, "PPV": 0.8, "NPV": 0.9, "ACC": acc},
            "auc": 0.9}


def _probabilities(seed: int, n: int = 40) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    benign = rng.uniform(0.0, 1.0, n)
    return np.stack([benign, 1.0 - benign], axis=1), rng.integers(0, 2, n)


def _fold(share: float, sensitivity: float | None, specificity: float | None, temperature: float,
          ece_before: float, ece_after: float, seed: int = 0) -> dict[str, Any]:
    probabilities, labels = _probabilities(seed)
    before = reliability(probabilities, labels)
    after = reliability(apply_temperature(probabilities, temperature), labels)
    # The ECEs are set by hand so the expected means are round; the bins stay real.
    before["ece"], after["ece"] = ece_before, ece_after
    return {**_old_fold(),
            "presence": {"min_lesion_share": share, "lesion_images": 10, "lesion_free_images": 3,
                         "sensitivity": sensitivity, "specificity": specificity},
            "presence_chosen_on": "validation: 4 lesion and 1 lesion-free images",
            "calibration": {"temperature": temperature, "fitted_on": "validation: 4 lesion images",
                            "before": before, "after": after}}


def _results() -> dict[str, dict[str, Any]]:
    # MTL-COSA sits exactly on the target (95% and 90%); MTL misses the specificity.
    cosa = [_fold(0.002, 0.95, 0.90, 1.5, 0.2, 0.1, seed=1), _fold(0.004, 0.95, 0.90, 2.5, 0.3, 0.05, seed=2)]
    mtl = [_fold(0.002, 1.0, 0.80, 1.0, 0.1, 0.1, seed=3), _fold(0.002, 1.0, 0.90, 1.0, 0.1, 0.1, seed=4)]
    return {"mtl_cosa": {"folds": cosa, "aggregate": aggregate(cosa)},
            "mtl": {"folds": mtl, "aggregate": aggregate(mtl)}}


def _csv(path: Path) -> list[list[str]]:
    return list(csv.reader(path.open(encoding="utf-8")))


def test_aggregate_gives_presence_and_calibration_spread() -> None:
    folds = _results()["mtl_cosa"]["folds"]
    result = aggregate(folds)
    share = result["presence"]["min_lesion_share"]
    assert share["mean"] == pytest.approx(0.003) and share["std"] == pytest.approx(np.std([0.002, 0.004], ddof=1))
    assert (share["min"], share["max"]) == (0.002, 0.004)
    assert result["presence"]["sensitivity"]["mean"] == pytest.approx(0.95)
    assert result["presence"]["specificity"]["std"] == 0.0
    calibration = result["calibration"]
    assert calibration["temperature"]["mean"] == pytest.approx(2.0)
    assert calibration["temperature"]["std"] == pytest.approx(np.std([1.5, 2.5], ddof=1))
    assert calibration["ece_before"]["mean"] == pytest.approx(0.25)
    assert calibration["ece_after"]["std"] == pytest.approx(np.std([0.1, 0.05], ddof=1))
    # The paper's sections are untouched by the new ones.
    assert aggregate([_old_fold(), _old_fold()])["segmentation"] == result["segmentation"]


def test_a_fold_without_lesion_images_is_left_out_of_the_sensitivity() -> None:
    result = aggregate([_fold(0.002, None, 1.0, 1.0, 0.1, 0.1), _fold(0.002, 0.9, 0.8, 1.0, 0.1, 0.1)])
    assert result["presence"]["sensitivity"] == {"mean": 0.9, "std": 0.0, "min": 0.9, "max": 0.9}
    assert result["presence"]["specificity"]["mean"] == pytest.approx(0.9)


def test_target_is_judged_on_the_means() -> None:
    def entry(mean: float) -> dict[str, float]:
        return {"mean": mean, "std": 0.0}

    assert presence_target({"sensitivity": entry(0.95), "specificity": entry(0.90)}) == "met"
    # A mean of 95% that a float sum leaves a hair below 0.95 still prints, and counts, as 95%.
    hair_below = float(np.mean([0.9, 1.0, 0.95]))
    assert hair_below < 0.95 and f"{hair_below * 100:.2f}" == "95.00"
    assert presence_target({"sensitivity": entry(hair_below), "specificity": entry(0.9)}) == "met"
    assert presence_target({"sensitivity": entry(0.94), "specificity": entry(0.99)}) == "not met"
    assert presence_target({"sensitivity": entry(1.0), "specificity": entry(0.89)}) == "not met"
    assert presence_target({"sensitivity": entry(1.0), "specificity": entry(float("nan"))}) == "–"


def test_tables_show_presence_and_calibration(tmp_path: Path) -> None:
    written = write_tables(_results(), "phantom:20", tmp_path, figures=[("reliability", "reliability.png")])
    assert {tmp_path / "presence.csv", tmp_path / "calibration.csv"} <= set(written)

    presence = _csv(tmp_path / "presence.csv")
    assert presence[0] == ["Model", "min lesion share (% of image)",
                           "presence sensitivity (lesion images that keep their lesion)",
                           "presence specificity (lesion-free images called lesion-free)", "target"]
    assert presence[1] == ["MTL-COSA", "0.300 ± 0.141 (0.200–0.400)", "95.00 ± 0.00 (95.00–95.00)",
                           "90.00 ± 0.00 (90.00–90.00)", "met"]
    assert presence[2] == ["MTL", "0.200 ± 0.000 (0.200–0.200)", "100.00 ± 0.00 (100.00–100.00)",
                           "85.00 ± 7.07 (80.00–90.00)", "not met"]

    calibration = _csv(tmp_path / "calibration.csv")
    assert calibration[0] == ["Model", "temperature", "ECE before (%)", "ECE after (%)",
                              "folds whose temperature lies inside its range"]
    assert calibration[1] == ["MTL-COSA", "2.00 ± 0.71", "25.00 ± 7.07", "7.50 ± 3.54", "100%"]
    assert calibration[2] == ["MTL", "1.00 ± 0.00", "10.00 ± 0.00", "10.00 ± 0.00", "100%"]

    markdown = (tmp_path / "tables.md").read_text(encoding="utf-8")
    assert f"### {PRESENCE_TITLE}" in markdown and f"### {CALIBRATION_TITLE}" in markdown
    assert "specificity ≥ 90% and sensitivity ≥ 95%" in markdown
    assert ("| MTL-COSA | 0.300 ± 0.141 (0.200–0.400) | 95.00 ± 0.00 (95.00–95.00) | "
            "90.00 ± 0.00 (90.00–90.00) | met |") in markdown
    assert "| MTL-COSA | 2.00 ± 0.71 | 25.00 ± 7.07 | 7.50 ± 3.54 |" in markdown
    # How each fold chose its threshold and temperature is said under the tables.
    assert "MTL-COSA, threshold chosen on: validation: 4 lesion and 1 lesion-free images (2 folds)." in markdown
    assert "MTL, temperature fitted on: validation: 4 lesion images (2 folds)." in markdown
    assert markdown.rstrip().endswith("![reliability](reliability.png)")
    stored = json.loads((tmp_path / "results.json").read_text())
    assert stored["results"]["mtl_cosa"]["aggregate"]["presence"]["specificity"]["mean"] == pytest.approx(0.9)


def test_old_metrics_make_no_new_tables(tmp_path: Path) -> None:
    folds = [_old_fold(0.7), _old_fold(0.9)]
    results = {"mtl_cosa": {"folds": folds, "aggregate": aggregate(folds)}}
    assert "presence" not in results["mtl_cosa"]["aggregate"] and "calibration" not in results["mtl_cosa"]["aggregate"]
    written = write_tables(results, "busi:/data", tmp_path)
    assert {p.name for p in written} == {"tables.md", "results.json", "table1_segmentation.csv",
                                         "table2_classification.csv", "table2_clinical.csv"}
    markdown = (tmp_path / "tables.md").read_text(encoding="utf-8")
    assert PRESENCE_TITLE not in markdown and CALIBRATION_TITLE not in markdown and "![" not in markdown
    assert not (tmp_path / "presence.csv").exists() and not (tmp_path / "calibration.csv").exists()
    assert fold_reliabilities(results) == {}


def test_pooled_bins_by_hand() -> None:
    fold_a = {"ece": 0.0, "images": 2,
              "bins": [{"low": 0.5, "high": 0.55, "count": 2, "accuracy": 0.5, "confidence": 0.52}]}
    fold_b = {"ece": 0.0, "images": 6, "bins": [
        {"low": 0.5, "high": 0.55, "count": 2, "accuracy": 1.0, "confidence": 0.54},
        {"low": 0.9, "high": 0.95, "count": 4, "accuracy": 0.75, "confidence": 0.92}]}
    pooled = pool_reliability([fold_a, fold_b])
    assert pooled["images"] == 8
    assert [(b["count"], b["accuracy"], b["confidence"]) for b in pooled["bins"]] == \
        [(4, pytest.approx(0.75), pytest.approx(0.53)), (4, pytest.approx(0.75), pytest.approx(0.92))]
    assert pooled["ece"] == pytest.approx(0.5 * 0.22 + 0.5 * 0.17)
    assert np.isnan(pool_reliability([])["ece"])


def test_pooled_folds_equal_the_reliability_of_all_test_images() -> None:
    parts = [_probabilities(seed, n) for seed, n in ((5, 30), (6, 17), (7, 45))]
    pooled = pool_reliability([reliability(p, y) for p, y in parts])
    together = reliability(np.concatenate([p for p, _ in parts]), np.concatenate([y for _, y in parts]))
    assert pooled["images"] == together["images"] == 92
    assert pooled["ece"] == pytest.approx(together["ece"], abs=1e-12)
    assert [b["count"] for b in pooled["bins"]] == [b["count"] for b in together["bins"]]
    for mine, theirs in zip(pooled["bins"], together["bins"]):
        assert mine["accuracy"] == pytest.approx(theirs["accuracy"])
        assert mine["confidence"] == pytest.approx(theirs["confidence"])


def test_reliability_plot_is_a_png_with_the_pooled_ece(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import matplotlib.figure

    legend: list[str] = []
    savefig = matplotlib.figure.Figure.savefig

    def record_legend(figure: matplotlib.figure.Figure, *args: Any, **kwargs: Any) -> None:
        legend.extend(text.get_text() for axes in figure.axes for text in axes.get_legend().get_texts())
        savefig(figure, *args, **kwargs)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", record_legend)
    results = _results()
    per_model = fold_reliabilities(results)
    assert set(per_model) == {"mtl_cosa", "mtl"} and len(per_model["mtl_cosa"][0]) == 2
    path = plot_reliability(per_model, tmp_path / "reliability.png", "t")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The legend's ECE is that of the pooled bins (the per-fold "ece" values above were set by hand).
    before = pool_reliability(per_model["mtl_cosa"][0])
    assert before["images"] == 80
    assert f"MTL-COSA, before scaling (ECE {before['ece'] * 100:.1f}%)" in legend
    assert f"MTL, after scaling (ECE {pool_reliability(per_model['mtl'][1])['ece'] * 100:.1f}%)" in legend


def test_cv_with_normal_images_writes_presence_calibration_and_reliability(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from tests.test_cli import TINY, invoke

    out = tmp_path / "cv"
    code, output = invoke("cv", *TINY, "--include-normal", "--folds", "2", "--models", "mtl_cosa", "--out", str(out))
    assert code == 0, output
    markdown = (out / "tables.md").read_text(encoding="utf-8")
    assert PRESENCE_TITLE in markdown and CALIBRATION_TITLE in markdown
    assert "![reliability](reliability.png)" in markdown
    assert (out / "reliability.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The table's figures are those of the folds' metrics.json.
    folds = [json.loads((out / "mtl_cosa" / f"fold{i}" / "metrics.json").read_text()) for i in range(2)]
    assert all("presence" in f and "calibration" in f for f in folds)
    specificity = np.mean([f["presence"]["specificity"] for f in folds]) * 100
    temperature = np.mean([f["calibration"]["temperature"] for f in folds])
    assert _csv(out / "presence.csv")[1][3].startswith(f"{specificity:.2f} ± ")
    assert _csv(out / "calibration.csv")[1][1].startswith(f"{temperature:.2f} ± ")


def test_folds_that_decided_alike_share_one_note_whatever_their_figures() -> None:
    from cosa_edge.report.tables import _fold_notes

    def fold(fitted_on: str) -> dict:
        return {"calibration": {"temperature": 1.0, "fitted_on": fitted_on}}

    not_kept = ("none: a temperature fitted on 4/5 of the validation: 77 lesion images did not lower the negative "
                "log-likelihood of the rest (cross-fitted {:.4f} unscaled, 0.3 scaled), so the probabilities stay "
                "unscaled (the fit on all of them gave T = {:.3f})")
    folds = [fold(not_kept.format(0.28, 0.77)), fold("validation: 77 lesion images"), fold(not_kept.format(0.35, 0.83))]
    notes = _fold_notes({"mtl_cosa": {"folds": folds}}, "calibration")
    assert notes.count("did not lower") == 1 and "(2 folds)" in notes
    assert "validation: 77 lesion images (1 fold)" in notes
    assert "cross-fitted" not in notes and "each fold's figures: results.json" in notes
    # Sentences without figures are left as they were, with no pointer.
    plain = _fold_notes({"mtl": {"folds": [fold("validation: 4 lesion images")] * 2}}, "calibration")
    assert plain == "- MTL, temperature fitted on: validation: 4 lesion images (2 folds).\n"


def test_a_temperature_at_an_end_of_its_range_is_not_kept() -> None:
    """Issue #23's rule: T fitted at the search range's floor (0.05) or ceiling (20) means the validation images
    could not set it; the fold's ECE "after" is its ECE before, and the table counts the folds that kept theirs."""
    from cosa_edge.calibration import TEMPERATURE_RANGE, kept_temperature

    assert kept_temperature(TEMPERATURE_RANGE[0])[0] == 1.0 and "end of its search range" in \
        kept_temperature(TEMPERATURE_RANGE[0])[1]
    assert kept_temperature(TEMPERATURE_RANGE[1])[0] == 1.0
    assert kept_temperature(1.5) == (1.5, None) and kept_temperature(0.06) == (0.06, None)
    folds = [_fold(0.002, 0.95, 0.90, TEMPERATURE_RANGE[0], 0.2, 0.01, seed=1),
             _fold(0.002, 0.95, 0.90, 1.5, 0.3, 0.1, seed=2)]
    calibration = aggregate(folds)["calibration"]
    assert calibration["ece_after"]["mean"] == pytest.approx((0.2 + 0.1) / 2)  # the floor's 0.01 is not believed
    assert calibration["temperature_kept"]["mean"] == pytest.approx(0.5)
