"""Outputs never replace inputs: every collision the nothing-lost issue lists is refused in one line, before
anything is read, and the input is byte for byte as it was. Real: the CLI, the file system (links included)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from cosa_edge.cli import cli
from cosa_edge.errors import CosaEdgeError
from cosa_edge.outputs import guard_outputs

RECORDING = b"\x00\x00\x00\x18ftypmp42 a patient's recording"


@pytest.fixture()
def recording(tmp_path: Path) -> Path:
    path = tmp_path / "scan.mp4"
    path.write_bytes(RECORDING)
    return path


def _refused(args: list[str], *phrases: str) -> str:
    result = CliRunner().invoke(cli, args)
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1, result.output
    for phrase in phrases:
        assert phrase in result.output, result.output
    return result.output


def test_the_same_file_under_any_name_is_one_file(recording: Path, tmp_path: Path) -> None:
    hard, soft = tmp_path / "hard.mp4", tmp_path / "soft.mp4"
    os.link(recording, hard)
    soft.symlink_to(recording)
    spelt = Path(f"{tmp_path}/./sub/../scan.mp4")
    (tmp_path / "sub").mkdir()
    for alias in (recording, hard, soft, spelt):
        with pytest.raises(CosaEdgeError, match="is the input --video"):
            guard_outputs({"--video": recording}, {"--out": alias}, overwrite=True)
    with pytest.raises(CosaEdgeError, match="--out and --results both name"):
        guard_outputs({}, {"--out": tmp_path / "a.jsonl", "--results": tmp_path / "sub" / ".." / "a.jsonl"},
                      overwrite=True)
    assert recording.read_bytes() == RECORDING


def test_infer_never_writes_over_its_recording_or_engine(recording: Path, tmp_path: Path) -> None:
    engine = tmp_path / "model.onnx"
    engine.write_bytes(b"engine")
    base = ["infer", "--video", str(recording), "--engine", str(engine)]
    _refused([*base, "--out", str(recording)], "--out", "is the input --video", "choose another --out")
    _refused([*base, "--results", str(recording)], "--results", "is the input --video")
    _refused([*base, "--results", f"{tmp_path}/./scan.mp4"], "is the input --video")
    _refused([*base, "--dicom-sr", str(engine)], "is the input --engine")
    _refused([*base, "--out", str(tmp_path / "o.mp4"), "--results", str(tmp_path / "o.mp4")], "both name")
    assert recording.read_bytes() == RECORDING and engine.read_bytes() == b"engine"


def test_an_output_inside_an_input_folder_is_refused(tmp_path: Path) -> None:
    series = tmp_path / "series"  # a DICOM series or a folder of frames: a file added would be read as one of them
    series.mkdir()
    (series / "IM0001.dcm").write_bytes(b"DICM")
    _refused(["infer", "--video", str(series), "--engine", str(tmp_path / "m.onnx"), "--results",
              str(series / "results.jsonl")], "lies inside the input folder --video")
    _refused(["bench", "--engine", str(tmp_path / "m.onnx"), "--check-data", f"folder:{tmp_path}", "--report",
              str(tmp_path / "report")], "lies inside the input folder --check-data")
    assert sorted(p.name for p in series.iterdir()) == ["IM0001.dcm"]


def test_export_and_build_engine_never_replace_their_source(tmp_path: Path) -> None:
    checkpoint = tmp_path / "best.pt"
    checkpoint.write_bytes(b"weights")
    _refused(["export", str(checkpoint), "-o", str(checkpoint)], "-o", "is the input CHECKPOINT")
    _refused(["export", str(checkpoint), "-o", str(tmp_path / "best.onnx"), "--cv-results",
              str(tmp_path / "best.card.md")], "the model card", "is the input --cv-results")
    model = tmp_path / "model.onnx"
    model.write_bytes(b"exported")
    _refused(["build-engine", str(model), "-o", str(model), "--target", "onnxruntime"], "is the input ONNX_MODEL")
    weights = tmp_path / "m.bin"  # an export saved under the name of the OpenVINO model's weights file
    weights.write_bytes(b"exported")
    _refused(["build-engine", str(weights), "-o", str(tmp_path / "m.xml"), "--target", "openvino"],
             "-o", "m.bin is the input ONNX_MODEL")
    assert checkpoint.read_bytes() == b"weights" and model.read_bytes() == b"exported"


def test_export_triton_never_replaces_the_engine_it_serves(tmp_path: Path) -> None:
    engine = tmp_path / "repo" / "cosa_edge" / "1" / "model.onnx"
    engine.parent.mkdir(parents=True)
    engine.write_bytes(b"engine")
    _refused(["export-triton", str(engine), "--repo", str(tmp_path / "repo"), "--overwrite"],
             "lies inside --repo", "which this command replaces")
    assert engine.read_bytes() == b"engine"


def test_an_existing_output_needs_overwrite_and_then_is_replaced(recording: Path, tmp_path: Path) -> None:
    results = tmp_path / "earlier.jsonl"
    results.write_text("an earlier result\n")
    _refused(["infer", "--video", str(recording), "--engine", str(tmp_path / "m.onnx"), "--results", str(results)],
             "already exists; give --overwrite")
    assert results.read_text() == "an earlier result\n"
    out = tmp_path / "phantoms"
    assert CliRunner().invoke(cli, ["phantom", "--out", str(out), "--count", "2", "--size", "32", "--no-video"]
                              ).exit_code == 0
    _refused(["phantom", "--out", str(out), "--count", "2", "--size", "32", "--no-video"], "already exists")
    again = CliRunner().invoke(cli, ["phantom", "--out", str(out), "--count", "3", "--size", "32", "--no-video",
                                     "--overwrite"])
    assert again.exit_code == 0, again.output
    assert len((out / "labels.csv").read_text().splitlines()) == 4  # header and the three new phantoms


def test_every_command_that_writes_files_says_the_convention_in_its_help() -> None:
    for command in ("infer", "export", "build-engine", "bench", "export-triton", "phantom", "evaluate"):
        text = CliRunner().invoke(cli, [command, "--help"]).output
        assert "--overwrite" in text and "refused always" in " ".join(text.split()), command
