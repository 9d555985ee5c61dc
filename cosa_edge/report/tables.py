"""Cross-validation results in the layout of the paper's Tables 1 and 2: Markdown, CSV and JSON."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import numpy as np

from ..contract import INTENDED_USE
from ..fileio import atomic_write_json, atomic_write_text
from ..metrics import CLASSIFICATION_KEYS, SEGMENTATION_KEYS
from . import paper

CLINICAL_KEYS = ("sensitivity", "specificity", "PPV", "NPV", "ACC")
DISPLAY_NAMES = {"uresnet": "UResNet", "resnet": "ResNet", "vgg16": "VGG-16", "lenet": "LeNet",
                 "mtl": "MTL", "mtl_sa": "MTL-SA", "mtl_cosa": "MTL-COSA"}
TASK_TYPE = {"uresnet": "ST", "resnet": "ST", "vgg16": "ST", "lenet": "ST", "mtl": "MT", "mtl_sa": "MT", "mtl_cosa": "MT"}


def mean_std(values: list[float]) -> tuple[float, float]:
    array = np.array([v for v in values if v is not None and np.isfinite(v)], dtype=np.float64)
    if array.size == 0:
        return float("nan"), float("nan")
    return float(array.mean()), float(array.std(ddof=1)) if array.size > 1 else 0.0


def aggregate(fold_metrics: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, float]]]:
    """Mean and sample standard deviation over folds, per section (segmentation, classification_...)."""
    result: dict[str, dict[str, dict[str, float]]] = {}
    sections = {"segmentation": SEGMENTATION_KEYS, "classification_paper": CLASSIFICATION_KEYS,
                "classification_clinical": CLINICAL_KEYS}
    for section, keys in sections.items():
        present = [m[section] for m in fold_metrics if section in m]
        if present:
            result[section] = {}
            for key in keys:
                mean, std = mean_std([m[key] for m in present])
                result[section][key] = {"mean": mean, "std": std}
    aucs = [m["auc"] for m in fold_metrics if "auc" in m]
    if aucs:
        mean, std = mean_std(aucs)
        result["auc"] = {"AUC": {"mean": mean, "std": std}}
    return result


def _cell(entry: dict[str, float] | None, percent: bool = True) -> str:
    if entry is None or not np.isfinite(entry["mean"]):
        return "–"
    scale = 100.0 if percent else 1.0
    return f"{entry['mean'] * scale:.2f} ± {entry['std'] * scale:.2f}"


def _paper_cell(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def _markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def build_tables(results: dict[str, dict[str, Any]], data_spec: str) -> dict[str, tuple[list[str], list[list[str]]]]:
    """Rows of Table 1, Table 2 (paper convention) and the clinical table; ours beside the paper's."""
    key = paper.dataset_key(data_spec)
    tables: dict[str, tuple[list[str], list[list[str]]]] = {}
    specs = [
        ("table1_segmentation", "segmentation", SEGMENTATION_KEYS, paper.TABLE1),
        ("table2_classification", "classification_paper", CLASSIFICATION_KEYS, paper.TABLE2),
        ("table2_clinical", "classification_clinical", CLINICAL_KEYS, None),
    ]
    for name, section, keys, published in specs:
        header = ["Type", "Method", "Source", *keys] + (["AUC"] if section != "segmentation" else [])
        rows = []
        for architecture, result in results.items():
            aggregate_ = result["aggregate"]
            if section not in aggregate_:
                continue
            label = DISPLAY_NAMES.get(architecture, architecture)
            ours = [_cell(aggregate_[section].get(k)) for k in keys]
            if section != "segmentation":
                ours.append(_cell(aggregate_.get("auc", {}).get("AUC"), percent=False))
            rows.append([TASK_TYPE.get(architecture, ""), label, "cosa-edge", *ours])
            if published is not None and key is not None and architecture in published[key]:
                theirs = [_paper_cell(published[key][architecture].get(k)) for k in keys]
                if section != "segmentation":
                    theirs.append(_paper_cell(paper.AUC[key].get(architecture)))
                rows.append([TASK_TYPE.get(architecture, ""), label, "paper", *theirs])
        if rows:
            tables[name] = (header, rows)
    return tables


def write_tables(results: dict[str, dict[str, Any]], data_spec: str, out_dir: Path, preamble: str = "") -> list[Path]:
    """Write tables.md, one CSV per table and results.json into ``out_dir``."""
    out_dir = Path(out_dir)
    tables = build_tables(results, data_spec)
    titles = {
        "table1_segmentation": "Table 1. Tumour segmentation (%), mean ± std over folds, per-image averages",
        "table2_classification": "Table 2. Tumour classification (%), BENIGN as the positive class (the paper's convention)",
        "table2_clinical": "Clinical convention: MALIGNANT as the positive class (%)",
    }
    # Every report says what the figures may be used for, first.
    markdown = [f"*{INTENDED_USE}*\n", *([preamble.rstrip() + "\n"] if preamble else [])]
    written = []
    for name, (header, rows) in tables.items():
        markdown.append(f"### {titles[name]}\n\n{_markdown_table(header, rows)}")
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(header)
        writer.writerows(rows)
        atomic_write_text(out_dir / f"{name}.csv", buffer.getvalue())
        written.append(out_dir / f"{name}.csv")
    atomic_write_text(out_dir / "tables.md", "\n".join(markdown))
    atomic_write_json(out_dir / "results.json", {"data": data_spec, "intended_use": INTENDED_USE, "results": results})
    return [out_dir / "tables.md", out_dir / "results.json", *written]
