"""Run one fuzz case in a process of its own, under a timeout and a memory limit, and say how it ended.

A case is a `cosa-edge` command line run in a folder of its own that holds its input files. Two ways to run it:

- :class:`ForkRunner`: children forked from a fork server that has imported the CLI once
  (cosa_edge/fuzz/forkserver.py); a case costs its own work only, so hundreds fit in the default test run;
- :func:`run_fresh`: ``python -m cosa_edge.cli ...`` in a new interpreter, exactly as a user runs it.

Both apply the same limits (RLIMIT_AS for memory, a wall-clock timeout that kills the case's process group)
and the same judgement (:func:`cosa_edge.fuzz.outcomes.classify`), and both look for half-written outputs left
in the case's folder.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from .forkserver import limit_memory
from .outcomes import Ended, classify


@dataclass(frozen=True)
class Limits:
    timeout_s: float = 30.0
    # Address space (RLIMIT_AS), not resident memory. A normal case (a small cine through the tiny engine, one
    # thread per pool) ran under 600 MiB here; 2 GiB leaves room for large but honest frames and still stops a
    # header that asks for tens of gigabytes.
    memory_mb: int = 2048


#: Names that half-written outputs carry (cosa_edge/stream/writers.py, cosa_edge/fileio.py) until renamed.
_PARTIAL_MARKS = (".partial", ".tmp")


def leftovers(folder: Path) -> list[str]:
    """Half-written outputs in ``folder``: a case must leave finished files or none."""
    return sorted(path.name for path in Path(folder).rglob(".*")
                  if path.is_file() and any(mark in path.name for mark in _PARTIAL_MARKS))


def _case_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    # The checkout being fuzzed, not whichever cosa-edge is installed.
    package_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH", "")]))
    # One thread per pool: the cases are small and run one at a time; idle spinning threads would only steal
    # the CPU from whatever runs beside the harness.
    env.setdefault("OMP_NUM_THREADS", "1")
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    # A crash is told by its signal; a faulthandler dump (pytest switches it on) would look like a traceback.
    env.pop("PYTHONFAULTHANDLER", None)
    env.update(extra or {})
    return env


def _judge(returncode: int | None, folder: Path, seconds: float, timed_out: bool,
           peak_rss_mb: float | None) -> Ended:
    stderr_path = folder / "stderr.txt"
    stderr = stderr_path.read_text(errors="replace") if stderr_path.exists() else ""
    return classify(returncode, stderr, seconds, timed_out=timed_out, leftovers=leftovers(folder),
                    peak_rss_mb=peak_rss_mb)


class ForkRunner:
    """A fork server and the cases it runs; use as a context manager."""

    def __init__(self, limits: Limits = Limits(), env: Mapping[str, str] | None = None) -> None:
        self.limits = limits
        self._process = subprocess.Popen([sys.executable, "-m", "cosa_edge.fuzz.forkserver"],
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                         env=_case_env(env))
        ready = self._answer()
        if not ready.get("ready"):
            raise RuntimeError(f"the fuzz fork server did not start: {ready}")

    def _answer(self) -> dict[str, Any]:
        stdout: IO[str] = self._process.stdout  # type: ignore[assignment]
        line = stdout.readline()
        if not line:
            raise RuntimeError(f"the fuzz fork server ended (exit status {self._process.wait()})")
        return json.loads(line)

    def run(self, argv: list[str], folder: Path, limits: Limits | None = None, *, code: str | None = None) -> Ended:
        """Run ``cosa-edge ARGV`` with ``folder`` as its working directory (``code``: Python run instead of the
        CLI, for the harness's own tests)."""
        limits = limits or self.limits
        stdin: IO[str] = self._process.stdin  # type: ignore[assignment]
        request = {"argv": list(argv), "cwd": str(Path(folder).resolve()), "timeout_s": limits.timeout_s,
                   "memory_mb": limits.memory_mb, "code": code}
        stdin.write(json.dumps(request) + "\n")
        stdin.flush()
        answer = self._answer()
        return _judge(os.waitstatus_to_exitcode(answer["status"]), Path(folder), answer["seconds"],
                      answer["timed_out"], answer["peak_rss_mb"])

    def close(self) -> None:
        if self._process.poll() is None:
            self._process.stdin.close()  # type: ignore[union-attr]
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()

    def __enter__(self) -> ForkRunner:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def run_fresh(argv: list[str], folder: Path, limits: Limits = Limits(),
              env: Mapping[str, str] | None = None) -> Ended:
    """Run ``python -m cosa_edge.cli ARGV`` in a new interpreter, in ``folder``, as a user would."""
    folder = Path(folder)
    started = time.perf_counter()
    with (folder / "stdout.txt").open("wb") as out, (folder / "stderr.txt").open("wb") as err:
        process = subprocess.Popen([sys.executable, "-m", "cosa_edge.cli", *argv], cwd=folder, stdout=out,
                                   stderr=err, stdin=subprocess.DEVNULL, env=_case_env(env), start_new_session=True,
                                   preexec_fn=lambda: limit_memory(limits.memory_mb))
        timed_out = False
        try:
            process.wait(timeout=limits.timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    return _judge(process.returncode, folder, time.perf_counter() - started, timed_out, None)
