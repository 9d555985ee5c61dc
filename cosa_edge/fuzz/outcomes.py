"""How a fuzz case ended, judged from its exit status and its stderr, as a user would see it.

The CLI's contract (cosa_edge/errors.py, cli.FriendlyGroup): a problem the user can fix ends the command
with exit status 1 and one line ``Error: <what is wrong and what to do>``; anything else is a bug. A native
decoder that crashes leaves no traceback at all, only a signal, which is why every case runs in its own process.
"""

from __future__ import annotations

import re
import signal
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any


class Outcome(str, Enum):
    RESULT = "result"  # exit status 0
    CLEAR_ERROR = "clear_error"  # exit status 1 or 2 with one "Error: ..." line and no traceback
    TRACEBACK = "traceback"  # a Python traceback reached the user
    CRASH = "crash"  # ended by a signal (a segfault or abort in native code), or an unexplained exit status
    HANG = "hang"  # still running at the timeout, and killed
    MEMORY = "memory"  # memory past the limit: MemoryError, numpy's or C++'s allocation failure

    @property
    def acceptable(self) -> bool:
        """Whether a user meets this end as the CLI promises: a result, or one sentence saying what is wrong."""
        return self in (Outcome.RESULT, Outcome.CLEAR_ERROR)


#: Signs, in stderr, of an allocation that the memory limit refused.
_MEMORY_SIGNS = ("MemoryError", "Unable to allocate", "std::bad_alloc", "Cannot allocate memory",
                 "Insufficient memory", "out of memory", "Failed to allocate")
_TRACEBACK = "Traceback (most recent call last)"
#: Python's own wording for a bug: an error line that carries it passes on a library's internals, not the cause.
_INTERNAL_WORDS = ("not supported between instances", "object has no attribute", "NoneType", "index out of range",
                   "too many values to unpack", "not enough values to unpack", "invalid literal for",
                   "object is not subscriptable", "object is not iterable", "unhashable type", "division by zero",
                   "must be real number", "can't multiply sequence", "unsupported operand")
_ERROR_LINE = re.compile(r"^Error: (.+)$")
#: An error about an output that names the source's frame size or rate has found the cause (a source whose
#: frames no video of that kind holds).
_FRAME_SIZE = re.compile(r"\d+x\d+ pixels|[\d.e+]+ frames/s")


@dataclass
class Ended:
    """One case's end: the outcome and the evidence for it."""

    outcome: Outcome
    exit_code: int | None  # None when a signal ended it
    signal: str | None  # e.g. "SIGSEGV"
    seconds: float
    message: str  # the error line, the traceback's last line, or the signal; "" for a result
    error_lines: int = 0  # how many "Error: " lines the user saw (exactly one is the promise)
    leftovers: list[str] = field(default_factory=list)  # half-written outputs (".partial" files) left behind
    peak_rss_mb: float | None = None
    frames: int | None = None  # frame records in the results file, where one was written
    violations: list[str] = field(default_factory=list)  # what a result broke (e.g. frames dropped silently)

    @property
    def acceptable(self) -> bool:
        return self.outcome.acceptable and not self.leftovers and not self.violations

    def to_json(self) -> dict[str, Any]:
        record = asdict(self)
        record["outcome"] = self.outcome.value
        return record


def message_faults(message: str, outputs: tuple[str, ...] = ()) -> list[str]:
    """Why a clear error's message does not name the real cause, as far as a machine can tell.

    ``outputs``: the case's output file names. The harness writes them into a fresh, writable folder, so an error
    that blames one of them (or writing at all) has mistaken the cause, which lies in the input."""
    faults = []
    if any(word in message for word in _INTERNAL_WORDS):
        faults.append(f"the error passes on Python's own wording, not the cause: {message[:160]}")
    blames_output = "cannot write" in message or any(name in message for name in outputs)
    if blames_output and not _FRAME_SIZE.search(message):
        faults.append(f"the error blames an output that is writable; the cause is in the input: {message[:160]}")
    return faults


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1].strip()[:300] if lines else ""


def classify(returncode: int | None, stderr: str, seconds: float, *, timed_out: bool = False,
             memory_killed: bool = False, leftovers: list[str] | None = None,
             peak_rss_mb: float | None = None) -> Ended:
    """The outcome of a finished (or killed) case. ``returncode``: as subprocess gives it (negative: a signal).

    ``memory_killed``: the runner saw the child pass the memory limit (RLIMIT_AS turns most such allocations
    into MemoryError, but a native library may abort instead)."""
    errors = [match.group(1) for line in stderr.splitlines() if (match := _ERROR_LINE.match(line.rstrip()))]
    common = {"seconds": round(seconds, 3), "error_lines": len(errors), "leftovers": list(leftovers or []),
              "peak_rss_mb": peak_rss_mb}
    sig = -returncode if returncode is not None and returncode < 0 else None
    exit_code = returncode if sig is None else None
    if timed_out:
        return Ended(Outcome.HANG, exit_code, _signal_name(sig) if sig else None, message="killed at the timeout",
                     **common)
    has_traceback = _TRACEBACK in stderr
    memory = memory_killed or any(sign in stderr for sign in _MEMORY_SIGNS)
    if memory and (has_traceback or sig is not None or memory_killed):
        # An allocation past the limit: numpy's MemoryError, or a native library's bad_alloc abort.
        return Ended(Outcome.MEMORY, exit_code, _signal_name(sig) if sig else None, message=_last_line(stderr),
                     **common)
    if has_traceback:
        return Ended(Outcome.TRACEBACK, exit_code, _signal_name(sig) if sig else None, message=_last_line(stderr),
                     **common)
    if sig is not None:
        return Ended(Outcome.CRASH, None, _signal_name(sig), message=f"killed by {_signal_name(sig)}", **common)
    if returncode == 0:
        return Ended(Outcome.RESULT, 0, None, message="", **common)
    if returncode in (1, 2) and len(errors) == 1:
        return Ended(Outcome.CLEAR_ERROR, returncode, None, message=errors[0][:300], **common)
    # A non-zero exit without one error line: the user is left without an explanation (or with several).
    return Ended(Outcome.CRASH, returncode, None, message=f"exit status {returncode} with {len(errors)} error lines: "
                 f"{_last_line(stderr)}", **common)
