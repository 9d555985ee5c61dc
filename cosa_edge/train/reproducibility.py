"""The same command, seed, software and machine give the same weights, bit for bit, as far as PyTorch promises.

What decides a CPU run's arithmetic besides the seed is the thread count (a convolution's sums are split over
threads, and float addition is not associative) and algorithm choice. Training sets both from its config for
its own duration and puts the caller's settings back afterwards: a library call must not leave process-wide
state changed behind its caller (an engine opened with ``threads`` earlier in the same process once changed the
thread count a later training run used). CUDA runs ask for deterministic algorithms too, with warnings rather
than errors where an operation has none (PyTorch's own limit; docs: "Reproducibility").
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import torch

from ..hardware import DYNAMIC_THREADING_VARIABLES, available_cpus

def training_threads(requested: int | None) -> int:
    """``requested``, or the CPUs available shared among this node's processes (torchrun sets LOCAL_WORLD_SIZE)."""
    if requested:
        return requested
    return max(1, available_cpus() // int(os.environ.get("LOCAL_WORLD_SIZE", "1")))


@contextlib.contextmanager
def reproducible(threads: int, device: torch.device) -> Iterator[dict[str, Any]]:
    """Train with ``threads`` and deterministic algorithms; the caller's settings come back afterwards.

    Yields what was set, for the run's record.
    """
    before = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
              torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic)
    torch.use_deterministic_algorithms(True, warn_only=device.type == "cuda")
    torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = False, True
    try:
        with torch_threads(threads):
            yield {"threads": threads, "deterministic_algorithms": True,
                   **{name: os.environ.get(name) for name in DYNAMIC_THREADING_VARIABLES}}
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = before[2], before[3]


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run a block with ``threads`` intra-op threads and put the caller's count back (nothing where None)."""
    if not threads:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)
