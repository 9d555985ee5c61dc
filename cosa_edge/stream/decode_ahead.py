"""Offline DICOM decoding in a helper process that runs on idle CPU time only.

Why a process at idle priority: on a CPU the engine's runtime keeps every core busy inside each call, so
decoding in the inference thread between calls adds its whole time to every frame (1.3 ms of JPEG decoding
a 640x480 frame, beside a 19-ms engine call: the pipeline at 0.86-0.90 of the engine alone on two cores),
and a decoding *thread* beside the engine takes that time from the engine's workers one for one
(docs/deployment.md). The runtime's workers still leave short idle moments in every call (between
operators, in the serial ones). A process under Linux's SCHED_IDLE policy (else at nice 19) runs only in
them: measured on the 2-core CPU, the engine kept 0.99 of its speed beside it while it decoded about 0.9
frames per engine call. A process rather than a thread because a low-priority thread that holds Python's
GIL when it is preempted stalls the inference thread (tried; docs/deployment.md).

How it runs. The pipeline's inference thread decodes inline while the helper starts (an interpreter and
its imports take most of a second), then asks it for the frames from the next one on; the helper writes
each decoded frame into one of a few slots of memory shared with it and says which, the inference thread copies the
frame out and hands the slot back. Whatever happens to the helper, no frame is lost or repeated, and the
frames, their numbers and timestamps are those of one reader from the start (DicomCursor):

* it fails, dies or stops answering: the inference thread decodes inline from the next frame on;
* it falls behind because the machine is busy with other work (an idle-priority process then gets almost
  no CPU): when the inference thread has waited for it longer than decoding inline would have taken, it
  stops the helper and decodes inline from the next frame on, so a loaded machine is never slower than
  without the helper.

Only DICOM sources (pydicom finds every frame's bytes, so a reader can take over at any frame) of at least
:data:`MIN_FRAMES` frames use it; numpy, OpenCV and the standard library only.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

from .sources import DicomCursor, Frame, FrameSource

#: Shorter sources are decoded inline: the helper takes most of a second to start (a new interpreter and its
#: imports), and a short cine is over before it is ready (100 frames: 5 s of a 20 frames/s cine).
MIN_FRAMES = 100
#: Decoded frames the helper may hold ahead of the inference thread.
SLOTS = 4
#: The inference thread gives up on a helper that has not answered for this long (it hangs or is starved).
STALL_S = 2.0
#: Over this many frames, waiting for the helper longer than twice its own decoding time, plus
#: :data:`WAKE_UP_S` a frame for the two processes' hand-offs, means it is starved of CPU time.
WINDOW = 16
WAKE_UP_S = 0.001


@dataclass
class DecodeReport:
    """How a source's frames were decoded, for the pipeline's statistics."""

    mode: str = "inline"
    helper_frames: int = 0
    fell_back: str | None = None  # why the inference thread took decoding back, if it did
    helper_pid: int | None = None  # while it runs, for diagnosis

    def describe(self) -> str:
        if self.mode == "inline":
            return f"inline: {self.fell_back}" if self.fell_back else "inline"
        said = f"in a helper process ({self.helper_frames} frames)"
        return f"{said}, then inline: {self.fell_back}" if self.fell_back else said


def helper_possible(source: FrameSource) -> bool:
    """Whether this source's frames can be decoded by the helper process."""
    return (source.is_dicom and not source.info.live and (source.info.frame_count or 0) >= MIN_FRAMES
            and hasattr(os, "nice"))


def _lower_priority() -> None:
    """SCHED_IDLE (runs only on otherwise idle CPU time), else the lowest nice value."""
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))  # type: ignore[attr-defined]
    except (AttributeError, OSError):
        with contextlib.suppress(OSError):
            os.nice(19)


def _helper_main(from_parent: Connection, to_parent: Connection, memory: mmap.mmap) -> None:
    """The helper process: decode from the cursor it is given into the slots it is handed."""
    spec, region, slot_bytes, delay_s, idle_priority, die_after = from_parent.recv()
    if idle_priority:
        _lower_priority()
    source = FrameSource(spec, region=region)
    to_parent.send(("ready",))
    message = from_parent.recv()
    if message[0] != "start":
        return
    cursor: DicomCursor = message[1]
    free: deque[int] = deque(message[2])
    cpu, sent = time.process_time(), 0
    for frame, next_cursor in source.dicom_frames(cursor):
        if sent == die_after:
            os._exit(1)  # tests only: no goodbye, as a crash or a kill would leave it
        if delay_s:
            time.sleep(delay_s)  # tests only: a helper slower than decoding inline
        while not free:
            message = from_parent.recv()
            if message[0] != "free":
                return
            free.append(message[1])
        slot = free.popleft()
        image = np.ascontiguousarray(frame.image)
        pixels = None
        if image.nbytes <= slot_bytes:
            np.ndarray(image.shape, image.dtype, buffer=memory, offset=slot * slot_bytes)[...] = image
        else:  # larger than a slot (never for uint8 frames of the source's size): sent whole
            pixels = image
        spent, cpu = time.process_time() - cpu, time.process_time()
        to_parent.send(("frame", slot, image.shape, image.dtype.str, pixels, frame.index, frame.timestamp,
                        frame.instance, frame.region, frame.spacing_mm, next_cursor, spent))
        sent += 1
    to_parent.send(("end", source.stopped_early))


def _helper_entry(argv: list[str]) -> int:
    """``python -m cosa_edge.stream.decode_ahead FROM_PARENT TO_PARENT MEMORY SIZE`` (file descriptors)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle; it stops the helper
    import cv2

    cv2.setNumThreads(1)  # decoding is serial; no thread pool to compete with the engine's workers
    from_fd, to_fd, memory_fd, size = (int(value) for value in argv)
    from_parent, to_parent = Connection(from_fd, writable=False), Connection(to_fd, readable=False)
    memory = mmap.mmap(memory_fd, size)
    try:
        _helper_main(from_parent, to_parent, memory)
    except (EOFError, BrokenPipeError, ConnectionResetError):
        pass  # the parent has gone or stopped us
    except Exception as exc:  # the parent decodes inline from here, and meets the same problem itself
        with contextlib.suppress(Exception):
            to_parent.send(("failed", type(exc).__name__))
    finally:
        memory.close()
    return 0


def _shared_file(size: int) -> int:
    """A file descriptor of ``size`` bytes of memory, anonymous (no name to leak or clean up)."""
    if hasattr(os, "memfd_create"):
        descriptor = os.memfd_create("cosa-edge-frames")
    else:
        handle = tempfile.TemporaryFile()
        descriptor = os.dup(handle.fileno())
        handle.close()
    os.ftruncate(descriptor, size)
    return descriptor


class _Helper:
    """The parent's side of one helper process: a separate interpreter (``python -m``), so that nothing of
    the caller's main module runs again in it, as multiprocessing's spawn would."""

    def __init__(self, source: FrameSource, options: HelperOptions) -> None:
        info = source.info
        self.slot_bytes = max(1, info.width * info.height * 3)
        size = self.slot_bytes * SLOTS
        memory_fd = _shared_file(size)
        self.memory = mmap.mmap(memory_fd, size)
        child_reads, parent_writes = os.pipe()
        parent_reads, child_writes = os.pipe()
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", __name__, str(child_reads), str(child_writes), str(memory_fd), str(size)],
                pass_fds=(child_reads, child_writes, memory_fd), stdin=subprocess.DEVNULL, close_fds=True)
        finally:
            for descriptor in (child_reads, child_writes, memory_fd):
                os.close(descriptor)
        self.inbox = Connection(parent_reads, writable=False)
        self.outbox = Connection(parent_writes, readable=False)
        # The source's name goes down the pipe, not on the command line, where any user's `ps` would show it.
        self.outbox.send((source.spec, source.region_choice, self.slot_bytes, options.delay_s, options.idle_priority,
                          options.die_after))

    def poll_ready(self) -> bool | None:
        """True once the helper is ready, None if it failed to start, False while it is still starting."""
        try:
            if not self.inbox.poll():
                return None if self.process.poll() is not None else False
            return self.inbox.recv()[0] == "ready" or None
        except (EOFError, OSError):
            return None

    def wait_ready(self, timeout: float) -> bool | None:
        deadline = time.perf_counter() + timeout
        while (ready := self.poll_ready()) is False and time.perf_counter() < deadline:
            time.sleep(0.01)
        return ready or None

    def start(self, cursor: DicomCursor) -> None:
        self.outbox.send(("start", cursor, list(range(SLOTS))))

    def receive(self, timeout: float) -> tuple[Any, ...] | None:
        """The helper's next message, or None if it sent none within ``timeout`` or has gone."""
        try:
            if self.inbox.poll(timeout):
                return self.inbox.recv()
        except (EOFError, OSError):
            pass
        return None

    def frame_of(self, message: tuple[Any, ...]) -> Frame:
        _, slot, shape, dtype, pixels, index, timestamp, instance, region, spacing, _, _ = message
        if pixels is None:
            pixels = np.ndarray(shape, np.dtype(dtype), buffer=self.memory, offset=slot * self.slot_bytes).copy()
        with contextlib.suppress(OSError):
            self.outbox.send(("free", slot))
        return Frame(index, timestamp, pixels, instance=instance, region=region, spacing_mm=spacing)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.outbox.send(("stop",))
        self.outbox.close()
        try:
            self.process.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5.0)
        self.inbox.close()
        self.memory.close()


@dataclass(frozen=True)
class HelperOptions:
    """Knobs for tests: the defaults are what the pipeline uses."""

    idle_priority: bool = True
    #: Seconds the helper sleeps before each frame (a helper slower than decoding inline).
    delay_s: float = 0.0
    #: Decode this many frames inline, then wait for the helper (a handover at a known frame).
    handover_at: int | None = None
    #: The helper exits abruptly after sending this many frames (a helper that dies).
    die_after: int | None = None


def decoded_frames(source: FrameSource, report: DecodeReport | None = None, *, use_helper: bool = True,
                   options: HelperOptions = HelperOptions()) -> Iterator[Frame]:
    """Every frame of ``source``, in order, decoded by the helper process where it can be (else inline).

    ``report`` is filled in with how the frames were decoded.
    """
    report = report if report is not None else DecodeReport()
    if not (use_helper and helper_possible(source)):
        yield from source
        return
    helper = _Helper(source, options)
    report.helper_pid = helper.process.pid
    try:
        cursor, ready = DicomCursor(), False
        inline = source.dicom_frames(cursor)
        try:
            while True:  # decode inline while the helper starts
                if options.handover_at is not None and cursor.index >= options.handover_at:
                    ready = helper.wait_ready(STALL_S * 10)
                else:
                    ready = helper.poll_ready()
                if ready is not False:
                    break
                item = next(inline, None)
                if item is None:
                    return
                frame, cursor = item
                yield frame
        finally:
            inline.close()
        if ready:
            helper.start(cursor)
            report.mode = "helper"
            waits: deque[tuple[float, float]] = deque(maxlen=WINDOW)
            while True:
                asked = time.perf_counter()
                message = helper.receive(STALL_S)
                waited = time.perf_counter() - asked
                if message is None or message[0] == "failed":
                    report.fell_back = (f"the helper {'failed' if message else 'stopped answering'} at frame "
                                        f"{cursor.index + 1}")
                    break
                if message[0] == "end":
                    source.stopped_early = message[1] or source.stopped_early
                    return
                frame = helper.frame_of(message)
                source.frames_read += 1
                cursor = message[10]
                report.helper_frames += 1
                yield frame
                waits.append((waited, message[11]))
                if len(waits) == WINDOW and sum(w for w, _ in waits) > sum(2 * c + WAKE_UP_S for _, c in waits):
                    report.fell_back = (f"from frame {cursor.index + 1} on: the helper fell behind (the machine "
                                        "is busy with other work)")
                    break
        else:
            report.fell_back = "the helper process did not start"
        yield from (frame for frame, _ in source.dicom_frames(cursor))
    finally:
        helper.close()
        report.helper_pid = None


if __name__ == "__main__":
    sys.exit(_helper_entry(sys.argv[1:]))
