"""The DICOM decoding helper process (stream/decode_ahead.py): every frame once, in order, as one reader from the
start would give it, whoever decodes it; and the inference thread takes decoding back whenever the helper fails,
dies or falls behind.

Real: the helper process (a separate interpreter), its priority, the pipes and the shared memory, pydicom's and
OpenCV's decoding of DICOM files written by pydicom (tests/dicom_files.py). Stand-ins: for a handover at a known
frame, the inference thread waits for the helper (``HelperOptions.handover_at``: in use it never waits, and the
handover lands wherever the helper happens to be ready); a helper made slow (``delay_s``) or made to die
(``die_after``) stands for one that is starved or killed; the engine of the pipeline test (tests/test_stream.py's
FakeEngine). Whether the helper makes the pipeline faster is measured by `cosa-edge bench --video`
(docs/deployment.md), not here.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pydicom")

from cosa_edge.stream import decode_ahead, pipeline  # noqa: E402
from cosa_edge.stream.decode_ahead import MIN_FRAMES, DecodeReport, HelperOptions, decoded_frames  # noqa: E402
from cosa_edge.stream.run import infer_source  # noqa: E402
from cosa_edge.stream.sources import FrameSource  # noqa: E402
from tests.dicom_files import phantom, write_dicom  # noqa: E402
from tests.test_stream import FakeEngine  # noqa: E402

#: A normal-priority helper: the tests check what it delivers, not that it waits for idle cores.
NORMAL = HelperOptions(idle_priority=False)
SIZE = (48, 64)


@pytest.fixture(autouse=True)
def patient_starvation_check(monkeypatch: pytest.MonkeyPatch) -> None:
    """20 ms of slack a frame (1 ms in use): a CI machine busy with other tests must not look like a starved
    helper here; the helper made slow below sleeps 50 ms a frame."""
    monkeypatch.setattr(decode_ahead, "WAKE_UP_S", 0.02)


def _cine(path: Path, frames: int, seed: int = 0, instance: int | None = None, **attributes) -> Path:
    pictures = [phantom(seed * 1000 + k, SIZE) for k in range(frames)]
    return write_dicom(path, pictures, instance=instance, regions=[{"box": (4, 2, 59, 45), "delta_cm": (0.01, 0.02)}],
                       FrameTime=50.0, **attributes)


def _everything(frames) -> list[tuple]:
    return [(f.index, f.timestamp, f.instance, f.region, f.spacing_mm, f.image.copy()) for f in frames]


def _same(got: list[tuple], want: list[tuple]) -> None:
    assert [g[:5] for g in got] == [w[:5] for w in want]
    assert all(np.array_equal(g[5], w[5]) for g, w in zip(got, want))


@pytest.fixture(scope="module")
def cine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _cine(tmp_path_factory.mktemp("cine") / "cine.dcm", MIN_FRAMES + 20)


@pytest.fixture(scope="module")
def series(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("series")
    _cine(folder / "a.dcm", 60, seed=1, instance=2)
    _cine(folder / "b.dcm", 70, seed=2, instance=1)  # instance 1 plays first
    return folder


def _decode(spec: str, options: HelperOptions, use_helper: bool = True) -> tuple[list[tuple], DecodeReport, FrameSource]:
    source, report = FrameSource(spec), DecodeReport()
    return _everything(decoded_frames(source, report, use_helper=use_helper, options=options)), report, source


@pytest.mark.parametrize("handover_at", [0, 7, MIN_FRAMES + 19])
def test_the_helper_delivers_what_one_reader_from_the_start_gives(cine: Path, handover_at: int) -> None:
    want = _everything(FrameSource(str(cine)))
    got, report, source = _decode(str(cine), HelperOptions(idle_priority=False, handover_at=handover_at))
    _same(got, want)
    assert report.mode == "helper" and report.fell_back is None
    assert report.helper_frames == len(want) - handover_at  # the inline frames before the handover are not redone
    assert source.frames_read == len(want) and source.stopped_early is None
    assert report.describe() == f"in a helper process ({len(want) - handover_at} frames)"


@pytest.mark.parametrize("handover_at", [3, 70, 100])  # inside the first instance, at its end, inside the second
def test_a_series_keeps_its_numbering_clock_and_instances_across_a_handover(series: Path, handover_at: int) -> None:
    want = _everything(FrameSource(str(series)))
    assert [w[2] for w in want] == [1] * 70 + [2] * 60
    got, report, _ = _decode(str(series), HelperOptions(idle_priority=False, handover_at=handover_at))
    _same(got, want)
    assert report.helper_frames == 130 - handover_at


def test_a_helper_that_falls_behind_hands_decoding_back(cine: Path) -> None:
    """A helper slower than decoding inline (as an idle-priority process is on a machine busy with other work):
    the inference thread stops it after a window of frames and decodes the rest itself, losing none."""
    want = _everything(FrameSource(str(cine)))
    got, report, _ = _decode(str(cine), HelperOptions(idle_priority=False, handover_at=5, delay_s=0.05))
    _same(got, want)
    assert report.helper_frames == decode_ahead.WINDOW
    assert report.fell_back == (f"from frame {5 + decode_ahead.WINDOW + 1} on: the helper fell behind (the machine "
                                "is busy with other work)")


def test_a_helper_that_dies_loses_no_frame(cine: Path) -> None:
    want = _everything(FrameSource(str(cine)))
    got, report, _ = _decode(str(cine), HelperOptions(idle_priority=False, handover_at=5, die_after=9))
    _same(got, want)
    assert report.helper_frames == 9
    assert report.fell_back == "the helper stopped answering at frame 15"


def test_a_truncated_cine_stops_where_it_does_inline(tmp_path: Path, cine: Path) -> None:
    data = cine.read_bytes()
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(data[:int(len(data) * 0.9)])
    inline_source = FrameSource(str(cut))
    want = _everything(inline_source)
    assert MIN_FRAMES <= len(want) < MIN_FRAMES + 20 and inline_source.stopped_early
    got, report, source = _decode(str(cut), HelperOptions(idle_priority=False, handover_at=10))
    _same(got, want)
    assert report.mode == "helper" and report.fell_back is None
    assert source.stopped_early == inline_source.stopped_early


def test_short_sources_and_decode_inline_start_no_process(tmp_path: Path, cine: Path) -> None:
    short = _cine(tmp_path / "short.dcm", MIN_FRAMES - 1)
    for spec, use_helper in ((str(short), True), (str(cine), False)):
        source, report = FrameSource(spec), DecodeReport()
        frames = decoded_frames(source, report, use_helper=use_helper, options=NORMAL)
        next(frames)
        assert report.helper_pid is None and report.describe() == "inline"
        frames.close()


def test_the_helper_is_gone_when_the_reader_stops_early_and_never_sees_the_file_name(cine: Path) -> None:
    source, report = FrameSource(str(cine)), DecodeReport()
    frames = decoded_frames(source, report, options=HelperOptions(idle_priority=False, handover_at=2))
    for _ in range(5):
        next(frames)
    pid = report.helper_pid
    assert pid is not None and report.mode == "helper"
    # The file's name (exports name files after the patient) goes down a pipe, not on any user's `ps`.
    command_line = Path(f"/proc/{pid}/cmdline").read_bytes() if Path(f"/proc/{pid}").exists() else b""
    assert cine.name.encode() not in command_line and str(cine.parent).encode() not in command_line
    frames.close()
    assert report.helper_pid is None
    with pytest.raises(ProcessLookupError):  # exited and reaped, not a zombie
        os.kill(pid, 0)


def test_the_pipeline_gives_the_same_records_with_and_without_the_helper(tmp_path: Path, cine: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    def records(name: str) -> list[dict]:
        lines = (tmp_path / name).read_text().splitlines()[1:]
        return [{k: v for k, v in json.loads(line).items() if k != "latency_ms"} for line in lines]

    inline = infer_source(str(cine), FakeEngine(), None, tmp_path / "inline.jsonl", progress=False,
                          decode_helper=False)
    monkeypatch.setattr(pipeline, "decoded_frames",
                        functools.partial(decoded_frames, options=HelperOptions(idle_priority=False, handover_at=4)))
    helped = infer_source(str(cine), FakeEngine(), tmp_path / "helped.avi", tmp_path / "helped.jsonl",
                          progress=False)
    assert inline.decoding.describe() == "inline"
    assert helped.decoding.mode == "helper" and helped.decoding.helper_frames == MIN_FRAMES + 16
    assert records("helped.jsonl") == records("inline.jsonl")
    assert len(records("inline.jsonl")) == MIN_FRAMES + 20
