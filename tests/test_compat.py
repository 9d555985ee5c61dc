"""Files written by an earlier cosa-edge still load, and give the same answers: the code-structure moves of issue
#24 change no file format.

Real: the earlier code is this repository's own commit (``COMMIT``, the last one before those moves), taken out of
git into a temporary folder and run in a subprocess; it trains a tiny model on phantoms, exports it, builds an ONNX
Runtime FP32 engine, an OpenVINO FP32 engine (where OpenVINO is installed) and an ONNX Runtime INT8 engine, and
runs each on a fixed batch. Today's code opens the same files and must give the same outputs. Skipped where the
checkout has no git history (a source archive).
"""

from __future__ import annotations

import importlib.util
import io
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

REPO = Path(__file__).resolve().parents[1]
#: The last commit before issue #24's moves: its files are the ones users have.
COMMIT = "d05f245"

_WRITE_WITH_EARLIER_CODE = r"""
import sys
from pathlib import Path

import numpy as np
from click.testing import CliRunner

from cosa_edge.cli import cli
from cosa_edge.backends import open_engine

out = Path(sys.argv[1])
with_openvino = sys.argv[2] == "1"
runner = CliRunner()


def run(*args):
    result = runner.invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output


run("train", "--preset", "edge", "--data", "phantom:16", "--image-size", "64", "--epochs", "1", "--batch-size", "4",
    "--out", str(out / "run"))
run("export", str(out / "run" / "last.pt"), "-o", str(out / "model.onnx"))
run("build-engine", str(out / "model.onnx"), "-o", str(out / "model.ort.onnx"), "--target", "onnxruntime")
run("build-engine", str(out / "model.onnx"), "-o", str(out / "model.int8.onnx"), "--target", "onnxruntime",
    "--precision", "int8", "--calib-data", "phantom:24", "--calib-count", "16",
    "--accept-accuracy-loss")
files = ["run/last.pt", "model.onnx", "model.ort.onnx", "model.int8.onnx"]
if with_openvino:
    run("build-engine", str(out / "model.onnx"), "-o", str(out / "model.xml"), "--target", "openvino")
    files.append("model.xml")
batch = np.random.default_rng(0).uniform(0, 255, (2, 1, 64, 64)).astype(np.float32)
for name in files:
    with open_engine(out / name) as engine:
        for key, value in engine.infer(batch).items():
            np.save(out / f"{Path(name).name}.{key}.npy", value)
import cosa_edge
print(cosa_edge.__file__)
"""


def _earlier_code(destination: Path) -> Path:
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("no git history here to take the earlier code from")
    archive = subprocess.run(["git", "-C", str(REPO), "archive", COMMIT, "cosa_edge"], capture_output=True)
    if archive.returncode != 0:
        pytest.skip(f"commit {COMMIT} is not in this checkout's history (a shallow clone?)")
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(destination, filter="data")
    return destination


def test_files_written_before_the_moves_load_and_answer_alike(tmp_path: Path) -> None:
    from cosa_edge.backends import open_engine

    openvino_here = importlib.util.find_spec("openvino") is not None
    earlier = _earlier_code(tmp_path / "earlier")
    files = tmp_path / "files"
    files.mkdir()
    written = subprocess.run([sys.executable, "-c", _WRITE_WITH_EARLIER_CODE, str(files),
                              "1" if openvino_here else "0"],
                             capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(earlier)},
                             cwd=tmp_path, timeout=900)  # not the checkout: `-c` puts the working folder first
    assert written.returncode == 0, written.stderr[-3000:]
    assert written.stdout.strip().endswith(str(earlier / "cosa_edge" / "__init__.py"))  # the earlier code wrote them
    batch = np.random.default_rng(0).uniform(0, 255, (2, 1, 64, 64)).astype(np.float32)
    names = (["run/last.pt", "model.onnx", "model.ort.onnx", "model.int8.onnx"]
             + (["model.xml"] if openvino_here else []))
    for name in names:
        with open_engine(files / name) as engine:
            outputs = engine.infer(batch)
        for key, value in outputs.items():
            expected = np.load(files / f"{Path(name).name}.{key}.npy")
            np.testing.assert_array_equal(value, expected, err_msg=f"{name}: {key}")
