from pathlib import Path

import pytest

from cosa_edge.fileio import atomic_open, atomic_write_json, atomic_write_text


def test_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    atomic_write_text(target, "old")
    with pytest.raises(RuntimeError):
        with atomic_open(target) as handle:
            handle.write(b"half of the new")
            raise RuntimeError("interrupted")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_json_has_no_nan(tmp_path: Path) -> None:
    atomic_write_json(tmp_path / "a.json", {"x": float("nan"), "y": [float("inf"), 1.0]})
    assert (tmp_path / "a.json").read_text().split() == ["{", '"x":', "null,", '"y":', "[", "null,", "1.0", "]", "}"]


def test_print_and_save_prints_and_writes_only_where_asked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from cosa_edge.fileio import print_and_save

    print_and_save("| a table |", tmp_path / "out" / "report.md")
    print_and_save("| another |", None)
    assert capsys.readouterr().out == "| a table |\n| another |\n"
    assert (tmp_path / "out" / "report.md").read_text() == "| a table |"
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["report.md"]  # no temporary file left behind
