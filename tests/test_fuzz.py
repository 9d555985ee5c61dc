"""The fuzzing harness (cosa_edge/fuzz, docs/fuzzing.md): its judgement of real failures, and a seeded subset of
its cases, each run as `cosa-edge infer` in a process of its own.

Real: the CLI, the readers, OpenCV, pydicom and its decoders, ONNX Runtime, a genuine (tiny) ONNX engine, and
child processes that really raise, segfault, hang and allocate. Seeded: Hypothesis draws the cases with
derandomize=True and no example database, so that every run tries the same cases.
"""

from __future__ import annotations

import itertools
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("pydicom")
pytest.importorskip("onnx")
hypothesis = pytest.importorskip("hypothesis")

from hypothesis import HealthCheck, given, settings  # noqa: E402

from cosa_edge.fuzz.cases import KINDS, run_case  # noqa: E402
from cosa_edge.fuzz.engine import write_tiny_engine  # noqa: E402
from cosa_edge.fuzz.outcomes import Outcome, classify  # noqa: E402
from cosa_edge.fuzz.runner import ForkRunner, Limits, run_fresh  # noqa: E402

LIMITS = Limits(timeout_s=30.0, memory_mb=2048)


@pytest.fixture(scope="module")
def runner() -> Iterator[ForkRunner]:
    with ForkRunner(LIMITS) as forked:
        yield forked


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@pytest.fixture(scope="module")
def engine(workspace: Path) -> Path:
    return write_tiny_engine(workspace / "engine.onnx")


# --------------------------------------------------------------------------------------------------
# The judge must be able to fail a case: real failures, made on purpose


BAD_CHILDREN = {
    "traceback": ("raise ValueError('a bug')", Outcome.TRACEBACK),
    "segfault": ("import ctypes; ctypes.string_at(0)", Outcome.CRASH),
    "abort": ("import os; os.abort()", Outcome.CRASH),
    "hang": ("import time; time.sleep(60)", Outcome.HANG),
    "memory": ("import numpy; frames = numpy.ones((60000, 65535, 3), numpy.uint8)", Outcome.MEMORY),
    "silent exit": ("import sys; sys.exit(3)", Outcome.CRASH),
    "two errors": ("import sys; print('Error: one', file=sys.stderr); print('Error: two', file=sys.stderr); "
                   "sys.exit(1)", Outcome.CRASH),
    "clear error": ("import sys; print('note: read', file=sys.stderr); print('Error: x is wrong; do y', "
                    "file=sys.stderr); sys.exit(1)", Outcome.CLEAR_ERROR),
    "result": ("print('processed 3 of 3 frames')", Outcome.RESULT),
}


@pytest.mark.parametrize("name", list(BAD_CHILDREN))
def test_forked_children_that_fail_are_judged_failures(name: str, runner: ForkRunner, tmp_path: Path) -> None:
    code, expected = BAD_CHILDREN[name]
    ended = runner.run([], tmp_path, Limits(timeout_s=2.0, memory_mb=1024), code=code)
    assert ended.outcome is expected, ended
    assert ended.acceptable is expected.acceptable
    if name == "segfault":
        assert ended.signal == "SIGSEGV"
    if name == "hang":
        assert 2.0 <= ended.seconds < 10.0


def test_a_fresh_interpreter_is_judged_alike(tmp_path: Path) -> None:
    """`python -m cosa_edge.cli` as a user runs it: a real command's clear error, and a real segfault."""
    ended = run_fresh(["infer", "--video", "missing.mp4", "--engine", "missing.onnx", "--results", "r.jsonl"],
                      tmp_path, Limits(timeout_s=60.0))
    assert ended.outcome is Outcome.CLEAR_ERROR and "missing.onnx" in ended.message, ended
    result = subprocess.run([sys.executable, "-c", "import ctypes; ctypes.string_at(0)"], capture_output=True,
                            text=True, timeout=60)
    judged = classify(result.returncode, result.stderr, 0.0)
    assert judged.outcome is Outcome.CRASH and judged.signal == "SIGSEGV"


def test_half_written_outputs_fail_a_case(runner: ForkRunner, tmp_path: Path) -> None:
    ended = runner.run([], tmp_path, code="open('.out.partial.mp4', 'w').write('half')")
    assert ended.outcome is Outcome.RESULT and ended.leftovers == [".out.partial.mp4"] and not ended.acceptable


# --------------------------------------------------------------------------------------------------
# The seeded subset: every case ends in a result or one clear error


_CASE_NUMBERS = itertools.count()


def _check(kind: str, recipe: dict, runner: ForkRunner, workspace: Path, engine: Path) -> None:
    case = workspace / kind / f"case{next(_CASE_NUMBERS)}"
    ended = run_case(KINDS[kind], recipe, case, workspace, engine, runner, LIMITS)
    if ended.acceptable:
        shutil.rmtree(case, ignore_errors=True)
    assert ended.acceptable, (f"{ended.outcome.value}: {ended.message} {ended.violations} {ended.leftovers} "
                              f"(case kept in {case})")


SEEDED = settings(database=None, derandomize=True, deadline=None, print_blob=True,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


#: The recipes write invalid values (UIDs, decimal strings) on purpose; pydicom warns of them while building the
#: file in this process. The reader under test runs in a child process, where what it says is judged.
BUILDING_INVALID_DICOM = pytest.mark.filterwarnings("ignore:Invalid value for VR:UserWarning")


@BUILDING_INVALID_DICOM
@settings(SEEDED, max_examples=150)
@given(recipe=KINDS["dicom"].strategy())
def test_seeded_dicom_cases(recipe: dict, runner: ForkRunner, workspace: Path, engine: Path) -> None:
    _check("dicom", recipe, runner, workspace, engine)


@BUILDING_INVALID_DICOM
@settings(SEEDED, max_examples=20)
@given(recipe=KINDS["dicom_series"].strategy())
def test_seeded_dicom_series_cases(recipe: dict, runner: ForkRunner, workspace: Path, engine: Path) -> None:
    _check("dicom_series", recipe, runner, workspace, engine)


@settings(SEEDED, max_examples=60)
@given(recipe=KINDS["video"].strategy())
def test_seeded_video_cases(recipe: dict, runner: ForkRunner, workspace: Path, engine: Path) -> None:
    _check("video", recipe, runner, workspace, engine)


@settings(SEEDED, max_examples=50)
@given(recipe=KINDS["image"].strategy())
def test_seeded_image_cases(recipe: dict, runner: ForkRunner, workspace: Path, engine: Path) -> None:
    _check("image", recipe, runner, workspace, engine)


@settings(SEEDED, max_examples=20)
@given(recipe=KINDS["folder"].strategy())
def test_seeded_folder_cases(recipe: dict, runner: ForkRunner, workspace: Path, engine: Path) -> None:
    _check("folder", recipe, runner, workspace, engine)


@settings(SEEDED, max_examples=10)
@given(recipe=KINDS["data_spec"].strategy())
def test_seeded_data_spec_cases(recipe: dict, runner: ForkRunner, workspace: Path, engine: Path) -> None:
    _check("data_spec", recipe, runner, workspace, engine)


@settings(SEEDED, max_examples=10)
@given(recipe=KINDS["openvino"].strategy())
def test_seeded_openvino_engine_cases(recipe: dict, runner: ForkRunner, workspace: Path, engine: Path) -> None:
    pytest.importorskip("openvino")
    _check("openvino", recipe, runner, workspace, engine)


@settings(SEEDED, max_examples=30)
@given(recipe=KINDS["engine"].strategy())
def test_seeded_engine_file_cases(recipe: dict, runner: ForkRunner, workspace: Path, engine: Path) -> None:
    _check("engine", recipe, runner, workspace, engine)
