"""A run's log.jsonl (one line per epoch, written atomically) and the line each epoch prints."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..fileio import atomic_write_text, json_safe


def truncate_log(log_path: Path, epochs_done: int) -> None:
    """Drop log lines of epochs that never reached a checkpoint (the run was interrupted in between)."""
    if not log_path.exists():
        return
    kept = [line for line in log_path.read_text().splitlines() if line and json.loads(line)["epoch"] <= epochs_done]
    atomic_write_text(log_path, "".join(line + "\n" for line in kept))


def append_log(log_path: Path, record: dict[str, Any]) -> None:
    previous = log_path.read_text() if log_path.exists() else ""
    atomic_write_text(log_path, previous + json.dumps(json_safe(record)) + "\n")


def epoch_line(record: dict[str, Any]) -> str:
    parts = [f"epoch {record['epoch']}", f"loss {record.get('loss', float('nan')):.4f}"]
    val = record.get("val", {})
    if "segmentation" in val:
        parts.append(f"val DSC {val['segmentation']['DSC']:.3f}")
    if "classification_paper" in val:
        parts.append(f"val ACC {val['classification_paper']['ACC']:.3f}")
    if "auc" in val:
        parts.append(f"AUC {val['auc']:.3f}")
    parts.append(f"{record['seconds']:.1f}s")
    return "  ".join(parts)
