"""The README's main command, on tiny settings: the whole path from phantoms to an annotated video."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")


def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    from cosa_edge.contract import INTENDED_USE
    from cosa_edge.demo import run_demo
    from cosa_edge.errors import CosaEdgeError

    report = run_demo(tmp_path / "demo", data_spec="phantom:16", epochs=1, image_size=64, device="cpu")
    text = report.read_text()
    assert "MTL-COSA" in text
    assert text.splitlines()[2] == f"*{INTENDED_USE}*"  # under the title
    assert "## Deployment" in text and "ratio" in text
    assert "ONNX Runtime against PyTorch on the 4 held-out images" in text  # the export parity check ran
    for name in ("model.onnx", "model.ort.onnx", "annotated.mp4", "results.jsonl", "bench/report.json", "overlays.png"):
        assert (tmp_path / "demo" / name).is_file(), name
    header, *records = (tmp_path / "demo" / "results.jsonl").read_text().splitlines()
    assert json.loads(header)["type"] == "header" and json.loads(header)["source"] == "phantom_sweep.mp4"
    assert len(records) == 120 and json.loads(records[0])["index"] == 0
    assert int(cv2.VideoCapture(str(tmp_path / "demo" / "annotated.mp4")).get(cv2.CAP_PROP_FRAME_COUNT)) == 120
    with pytest.raises(CosaEdgeError, match="already holds a demo"):
        run_demo(tmp_path / "demo", data_spec="phantom:16", epochs=1, image_size=64, device="cpu")
