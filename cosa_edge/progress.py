"""Progress bars that suit where they are written: live on a terminal, a line now and then in a log file."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any

from tqdm import tqdm

#: Seconds between a bar's redraws when it writes to something that is not a terminal (a log file, CI, nohup).
#: Each redraw is a line there: a bar redrawn every batch wrote about half a megabyte into the log of one
#: cross-validation, which buried the lines that mattered.
LOG_INTERVAL_S = 60.0


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


class _LogBar(tqdm):
    """A bar writing to a log: a new postfix (a batch's loss, say) waits for the next timed redraw.

    tqdm's set_postfix redraws at once by default, which undid the interval: training's per-batch loss
    still wrote a line a batch into cross-validation logs.
    """

    def set_postfix(self, ordered_dict: Any = None, refresh: bool = False, **kwargs: Any) -> None:
        super().set_postfix(ordered_dict, refresh=refresh, **kwargs)


def progress_bar(iterable: Iterable[Any] | None = None, **options: Any) -> tqdm:
    """tqdm with its usual options; on a stream that is not a terminal it redraws every LOG_INTERVAL_S at most."""
    if _is_terminal(options.get("file") or sys.stderr):
        return tqdm(iterable, **options)
    options.setdefault("mininterval", LOG_INTERVAL_S)
    options.setdefault("maxinterval", LOG_INTERVAL_S)
    options.setdefault("ascii", True)  # block characters become noise in a plain-text log
    return _LogBar(iterable, **options)
