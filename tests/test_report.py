from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from cosa_edge.report.roc import plot_roc
from cosa_edge.report.tables import aggregate, write_tables


def _fold(dsc: float, acc: float) -> dict:
    seg = {"TPR": 0.8, "FPR": 0.3, "mIoU": 0.8, "DSC": dsc, "AER": 0.5}
    cls = {"TPR": 0.9, "FPR": 0.2, "ACC": acc, "PRE": 0.9, "F1": float("nan")}
    clinical = {"sensitivity": 0.8, "specificity": 0.9, "PPV": 0.8, "NPV": 0.9, "ACC": acc}
    return {"segmentation": seg, "classification_paper": cls, "classification_clinical": clinical, "auc": 0.9}


def test_aggregate_gives_mean_and_sample_std() -> None:
    result = aggregate([_fold(0.7, 0.8), _fold(0.9, 0.9)])
    assert result["segmentation"]["DSC"]["mean"] == np.float64(0.8)
    assert abs(result["segmentation"]["DSC"]["std"] - np.std([0.7, 0.9], ddof=1)) < 1e-12
    assert np.isnan(result["classification_paper"]["F1"]["mean"])


def test_tables_put_the_papers_numbers_beside_ours(tmp_path: Path) -> None:
    results = {"mtl_cosa": {"folds": [], "aggregate": aggregate([_fold(0.7, 0.8), _fold(0.9, 0.9)])}}
    write_tables(results, "busi:/data", tmp_path, preamble="test run")
    markdown = (tmp_path / "tables.md").read_text()
    assert ("| MT | MTL-COSA | cosa-edge | 80.00 ± 0.00 | 30.00 ± 0.00 | 80.00 ± 0.00 | 80.00 ± 14.14 | 50.00 ± 0.00 |"
            in markdown)
    assert "| MT | MTL-COSA | paper | 77.85 | 37.01 | 82.13 | 77.48 | 59.15 |" in markdown
    assert "| MT | MTL-COSA | paper | 92.20 | 10.00 | 91.48 | 95.05 | 93.59 | 0.97 |" in markdown
    rows = list(csv.reader((tmp_path / "table2_classification.csv").open()))
    assert rows[0] == ["Type", "Method", "Source", "TPR", "FPR", "ACC", "PRE", "F1", "AUC"]
    json.loads((tmp_path / "results.json").read_text())  # strict JSON: NaN written as null
    assert "NaN" not in (tmp_path / "results.json").read_text()


def test_phantom_data_gets_no_paper_rows(tmp_path: Path) -> None:
    results = {"mtl_cosa": {"folds": [], "aggregate": aggregate([_fold(0.7, 0.8)])}}
    write_tables(results, "phantom:20", tmp_path)
    assert "| paper |" not in (tmp_path / "tables.md").read_text()


def test_roc_plot_is_a_png(tmp_path: Path) -> None:
    labels = np.array([0, 0, 1, 1, 0])
    path = plot_roc({"mtl_cosa": (labels, np.array([0.9, 0.7, 0.4, 0.2, 0.6]))}, tmp_path / "roc.png", "t")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
