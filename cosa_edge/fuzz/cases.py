"""Input kinds the harness fuzzes, each as a user meets it: a file (or folder) and the `cosa-edge infer` command
line that reads it, plus what must hold of a result beyond its exit status.

Every kind is a recipe strategy (Hypothesis), a writer that turns a recipe into files in a case folder, and the
command line. The seeded test subset (tests/test_fuzz.py) and the campaign (scripts/fuzz_campaign.py) both run
:data:`KINDS`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import byte_cases, dicom_cases
from .outcomes import Ended, Outcome, message_faults
from .runner import ForkRunner, Limits, run_fresh


@dataclass(frozen=True)
class Kind:
    name: str
    strategy: Callable[[], Any]  # () -> a Hypothesis strategy of recipes
    # (recipe, case folder, scratch folder, engine path) -> the command line; writes the case's files
    prepare: Callable[[dict[str, Any], Path, Path, Path], list[str]]
    # recipe -> the frames its data holds, where the recipe leaves that knowable; None otherwise
    frames_in_data: Callable[[dict[str, Any]], int | None] = lambda _recipe: None


#: Every output a case may write, always into its own fresh folder.
OUTPUTS = ("out.mp4", "out.png", "out.jsonl")


def _infer(source: str, engine: Path | str, out: str = "out.mp4") -> list[str]:
    return ["infer", "--video", source, "--engine", str(engine), "--out", out, "--results", "out.jsonl",
            "--overwrite"]


def _dicom(recipe: dict[str, Any], folder: Path, scratch: Path, engine: Path) -> list[str]:
    dicom_cases.write_dicom_case(recipe, folder / "in.dcm")
    return _infer("in.dcm", engine)


def _bytes(recipe: dict[str, Any], folder: Path, scratch: Path, engine: Path) -> list[str]:
    suffix = recipe["base"]
    byte_cases.write_byte_case(recipe, folder / f"in{suffix}", scratch)
    # An image source writes an annotated image; a video, an annotated video.
    return _infer(f"in{suffix}", engine, "out.png" if suffix in byte_cases.IMAGES else "out.mp4")


def _folder(recipe: dict[str, Any], folder: Path, scratch: Path, engine: Path) -> list[str]:
    """A folder of images, one of them changed: one bad image among good ones."""
    images = folder / "images"
    images.mkdir()
    for index in range(3):
        byte_cases.write_byte_case({"base": recipe["base"], "ops": []}, images / f"{index}{recipe['base']}", scratch)
    byte_cases.write_byte_case(recipe, images / f"1{recipe['base']}", scratch)
    return _infer("images", engine)


def _dicom_series(recipe: dict[str, Any], folder: Path, scratch: Path, engine: Path) -> list[str]:
    """A series folder: two sound instances of the same kind around the changed one."""
    series = folder / "series"
    series.mkdir()
    for name in ("a.dcm", "c.dcm"):
        dicom_cases.write_dicom_case({"base": recipe["base"]}, series / name)
    dicom_cases.write_dicom_case(recipe, series / "b.dcm")
    return _infer("series", engine)


def _engine(recipe: dict[str, Any], folder: Path, scratch: Path, engine: Path) -> list[str]:
    """A changed engine file on a good image: what the hash check leaves to the parsers."""
    byte_cases.write_byte_case({"base": ".png", "ops": []}, folder / "in.png", scratch)
    byte_cases.write_byte_case(recipe, folder / "engine.onnx", scratch)
    return _infer("in.png", "engine.onnx", "out.png")


def _data_spec(recipe: dict[str, Any], folder: Path, scratch: Path, engine: Path) -> list[str]:
    """A labelled ``folder:`` data spec with one file changed, scored by `cosa-edge bench --check-data`."""
    byte_cases.write_data_spec_case(recipe, folder / "data")
    return ["bench", "--engine", str(engine), "--check-data", "folder:data", "--report", "report", "--warmup", "0",
            "--iterations", "1", "--rounds", "1", "--overwrite"]


def _openvino(recipe: dict[str, Any], folder: Path, scratch: Path, engine: Path) -> list[str]:
    """An OpenVINO engine with its sidecar, model or weights changed, on a good image."""
    byte_cases.write_byte_case({"base": ".png", "ops": []}, folder / "in.png", scratch)
    byte_cases.write_openvino_case(recipe, folder, scratch, engine)
    return _infer("in.png", "model.xml", "out.png")


KINDS: dict[str, Kind] = {
    "dicom": Kind("dicom", dicom_cases.recipes, _dicom, dicom_cases.frames_in_data),
    "dicom_series": Kind("dicom_series", dicom_cases.recipes, _dicom_series),
    "video": Kind("video", lambda: byte_cases.recipes(byte_cases.VIDEOS), _bytes),
    "image": Kind("image", lambda: byte_cases.recipes(byte_cases.IMAGES), _bytes),
    "folder": Kind("folder", lambda: byte_cases.recipes(byte_cases.IMAGES), _folder),
    "data_spec": Kind("data_spec", byte_cases.data_spec_recipes, _data_spec),
    "openvino": Kind("openvino", byte_cases.openvino_recipes, _openvino),
    "engine": Kind("engine", lambda: byte_cases.recipes(byte_cases.ENGINES), _engine),
}


def frames_processed(folder: Path) -> int | None:
    """Frame records in the case's JSONL (its first line is the run's header); None where none was written."""
    path = folder / "out.jsonl"
    if not path.exists():
        return None
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return sum(1 for line in lines if line.get("type") != "header")


def run_case(kind: Kind, recipe: dict[str, Any], folder: Path, scratch: Path, engine: Path,
             runner: ForkRunner | None = None, limits: Limits | None = None) -> Ended:
    """Write a case's files into the (new, empty) ``folder`` and run it, forked from ``runner`` or fresh."""
    limits = limits or Limits()
    folder.mkdir(parents=True)
    argv = kind.prepare(recipe, folder, scratch, engine)
    ended = runner.run(argv, folder, limits) if runner is not None else run_fresh(argv, folder, limits)
    ended.frames = frames_processed(folder)
    if ended.outcome is Outcome.CLEAR_ERROR:
        ended.violations += message_faults(ended.message, OUTPUTS)
    expected = kind.frames_in_data(recipe)
    if ended.outcome is Outcome.RESULT and expected is not None and (ended.frames or 0) < expected:
        stderr = (folder / "stderr.txt").read_text(errors="replace")
        said = [line for line in stderr.splitlines() if line.startswith(("warning:", "note:")) and "frame" in line]
        if not said:
            ended.violations.append(f"{ended.frames} of the {expected} frames in the data were processed, and no "
                                    "note or warning said why")
    return ended
