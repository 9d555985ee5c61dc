"""Outputs that can never destroy inputs, and one convention for outputs that already exist.

Every command names what it reads and what it writes before it reads anything, and :func:`guard_outputs`
refuses, in one line:

* an output that is an input: the same file however it is spelt (``os.path.samefile`` where both exist, so
  symbolic links, hard links and ``./`` hide nothing; the resolved path where the output does not exist yet);
* an output inside an input folder (a DICOM series, a folder of images or frames, a data set), which would
  change what that folder holds;
* an input inside an output folder that the command replaces;
* two outputs that are one file;
* an output that exists already, unless the user gave ``--overwrite``: then it is replaced only when the new one
  is complete (every writer writes beside its destination and renames), so a failure leaves the old one.

Files that a command updates by design (a TensorRT timing cache) are outputs that may exist.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from .errors import CosaEdgeError

#: Said in the --help of every command with --overwrite.
OVERWRITE_HELP = ("Replace outputs that already exist (each only once its new version is complete). Without it an "
                  "existing output is refused; an output that is one of the inputs is refused always.")

PathLike = str | os.PathLike[str]


def _resolved(path: Path) -> Path:
    return Path(os.path.realpath(path))


def same_file(a: Path, b: Path) -> bool:
    """One file (or folder) under two names: a link, a hard link, another spelling of the path."""
    if a.exists() and b.exists():
        try:
            return os.path.samefile(a, b)
        except OSError:
            pass
    return _resolved(a) == _resolved(b)


def inside(path: Path, folder: Path) -> bool:
    """Whether ``path`` lies within the folder ``folder`` (which exists and is a folder)."""
    if not folder.is_dir():
        return False
    resolved, container = _resolved(path), _resolved(folder)
    return container in resolved.parents


def holds_something(path: Path) -> bool:
    """An existing file, or a folder that is not empty."""
    return path.is_file() or (path.is_dir() and any(path.iterdir()))


def _named(paths: Mapping[str, PathLike | Iterable[PathLike] | None]) -> list[tuple[str, Path]]:
    """(option, path) pairs; an option may name several paths (an engine and its sidecars), or none."""
    pairs = []
    for option, value in paths.items():
        if value is None:
            continue
        values = [value] if isinstance(value, (str, os.PathLike)) else list(value)
        pairs += [(option, Path(v)) for v in values]
    return pairs


def _refuse_outputs_over_inputs(named_inputs: list[tuple[str, Path]], named_outputs: list[tuple[str, Path]]) -> None:
    """An output that is an input, lies inside an input folder, or holds an input."""
    for out_option, out in named_outputs:
        for in_option, source in named_inputs:
            if same_file(out, source):
                raise CosaEdgeError(f"{out_option} {out} is the input {in_option} {source}: cosa-edge never writes "
                                    f"over what it reads; choose another {out_option}")
            if inside(out, source):
                raise CosaEdgeError(f"{out_option} {out} lies inside the input folder {in_option} {source}, which "
                                    f"it would change; choose a {out_option} outside it")
            if inside(source, out):
                raise CosaEdgeError(f"the input {in_option} {source} lies inside {out_option} {out}, which this "
                                    f"command replaces; choose another {out_option}")


def _refuse_shared_outputs(named_outputs: list[tuple[str, Path]]) -> None:
    """Two outputs that name one path."""
    for index, (first_option, first) in enumerate(named_outputs):
        for second_option, second in named_outputs[index + 1:]:
            if same_file(first, second):
                raise CosaEdgeError(f"{first_option} and {second_option} both name {first}; give each output a "
                                    "path of its own")


def _refuse_existing_outputs(named_outputs: list[tuple[str, Path]], updated: Iterable[str]) -> None:
    """An output that exists already, unless it is one that is ``updated`` in place."""
    for option, out in named_outputs:
        if option not in updated and holds_something(out):
            raise CosaEdgeError(f"{option} {out} already exists; give --overwrite to replace it (the old one stays "
                                f"until the new one is complete), or choose another {option}")


def guard_outputs(inputs: Mapping[str, PathLike | Iterable[PathLike] | None],
                  outputs: Mapping[str, PathLike | Iterable[PathLike] | None], *, overwrite: bool,
                  updated: Iterable[str] = ()) -> None:
    """Refuse, before any work, an output that would replace or change an input, or an existing output without
    ``overwrite``. Keys are the options as the user typed them ("--out"); ``updated`` names outputs that are
    updated in place by design and may exist."""
    named_inputs, named_outputs = _named(inputs), _named(outputs)
    _refuse_outputs_over_inputs(named_inputs, named_outputs)
    _refuse_shared_outputs(named_outputs)
    if not overwrite:
        _refuse_existing_outputs(named_outputs, updated)


def existing_path(text: str | None) -> Path | None:
    """A command-line source that names a file or folder on disk (not a camera index or a stream URL)."""
    if not text or "://" in text:
        return None
    path = Path(text).expanduser()
    return path if path.exists() else None
