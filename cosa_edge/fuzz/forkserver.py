"""The fork server: imports cosa-edge's CLI once, then runs each case in a child forked for it.

A fresh ``python -m cosa_edge.cli`` spends most of a second importing numpy, OpenCV, pydicom and ONNX Runtime
before it reads a byte; forked from a process that has done that, a case starts in a few milliseconds and still
runs in a process of its own, so a segfault, an abort or a runaway allocation ends that case alone. The parent
only imports and forks: it never opens a case's files or starts a runtime, so every child starts from the same
state.

Protocol (one JSON object a line): the runner writes ``{"argv": [...], "cwd": DIR, "timeout_s": T,
"memory_mb": M}``; this process answers ``{"status": waitstatus, "timed_out": bool, "seconds": S,
"peak_rss_mb": R}``. The child's stdout and stderr go to ``stdout.txt`` and ``stderr.txt`` in ``cwd``.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import sys
import time
import traceback
from typing import Any

#: What a case needs that costs time to import; imported once, here, before any fork.
PRELOAD = ("numpy", "cv2", "click", "pydicom", "pydicom.pixels", "pydicom.encaps", "onnxruntime",
           "cosa_edge.cli", "cosa_edge.stream.run", "cosa_edge.stream.pipeline", "cosa_edge.data.dicom",
           "cosa_edge.engines.onnxruntime_engine", "cosa_edge.backends")
#: How often the parent looks at a running child (seconds).
_POLL_S = 0.005


def limit_memory(memory_mb: int) -> None:
    """Cap the address space: an allocation past it fails (MemoryError in Python, bad_alloc in C++)."""
    limit = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a crash is a finding, not a core file on disk


def _child(argv: list[str], cwd: str, memory_mb: int, code: str | None = None) -> None:
    """Runs in the forked child; never returns. ``code``: Python to run instead of the CLI (the harness's own
    tests use it to make children that crash, hang or allocate on purpose)."""
    status = 1
    try:
        os.setpgid(0, 0)  # its own process group: a timeout kills whatever it started too
        os.chdir(cwd)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)  # the parent's stdin is the runner's protocol pipe
        os.close(devnull)
        for fd, name in ((1, "stdout.txt"), (2, "stderr.txt")):
            target = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(target, fd)
            os.close(target)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        limit_memory(memory_mb)
        sys.argv = ["cosa-edge", *argv]
        if code is not None:
            exec(compile(code, "<fuzz case>", "exec"), {"__name__": "__main__"})  # the harness's own test children
        else:
            from cosa_edge.cli import main

            main()
        status = 0
    except SystemExit as stop:  # click ends every command with sys.exit
        status = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
        if not isinstance(stop.code, (int, type(None))):
            print(stop.code, file=sys.stderr)  # sys.exit("text") prints the text, as the interpreter does
    except BaseException:  # what the interpreter would print for an uncaught exception
        traceback.print_exc()
        status = 1
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # a full disk must not turn the exit status into another one
                pass
        os._exit(status)


def run_case(request: dict[str, Any]) -> dict[str, Any]:
    sys.stdout.flush()  # nothing buffered may be written twice, by the child as well
    started = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        _child(list(request["argv"]), request["cwd"], int(request["memory_mb"]), request.get("code"))
    deadline = started + float(request["timeout_s"])
    timed_out = False
    while True:
        done, status, usage = os.wait4(pid, os.WNOHANG)
        if done:
            break
        if time.perf_counter() > deadline:
            timed_out = True
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:  # it set no group yet, or it has just ended
                os.kill(pid, signal.SIGKILL)
            _, status, usage = os.wait4(pid, 0)
            break
        time.sleep(_POLL_S)
    return {"status": status, "timed_out": timed_out, "seconds": time.perf_counter() - started,
            "peak_rss_mb": round(usage.ru_maxrss / 1024.0, 1)}


def main() -> None:
    for name in PRELOAD:
        try:
            __import__(name)
        except ImportError:  # an optional extra that is not installed: the case says so itself
            pass
    protocol = sys.stdout
    protocol.write(json.dumps({"ready": True}) + "\n")
    protocol.flush()
    for line in sys.stdin:
        if not line.strip():
            continue
        protocol.write(json.dumps(run_case(json.loads(line))) + "\n")
        protocol.flush()


if __name__ == "__main__":
    main()
