"""Learning-rate schedules, as a pure function of training progress.

Stateless on purpose: the rate of any step follows from (epoch, step in epoch), so a resumed run continues
on exactly the curve it left, with nothing extra in the checkpoint.
"""

from __future__ import annotations

import math

from ..errors import CosaEdgeError

SCHEDULES = ("constant", "warmup-cosine")


def lr_factor(schedule: str, progress_epochs: float, total_epochs: int, warmup_epochs: float = 0.0) -> float:
    """The multiple of the base rate at ``progress_epochs`` (fractional epochs done) of ``total_epochs``.

    warmup-cosine: rises linearly from nearly 0 to 1 over ``warmup_epochs``, then falls along half a cosine
    to 0 at ``total_epochs`` (Loshchilov and Hutter's SGDR without restarts, with Goyal et al.'s warm-up).
    The warm-up is capped at half the run.
    """
    if schedule == "constant":
        return 1.0
    if schedule != "warmup-cosine":
        raise CosaEdgeError(f"unknown learning-rate schedule {schedule!r}; choose one of {', '.join(SCHEDULES)}")
    if warmup_epochs < 0:
        raise CosaEdgeError(f"--warmup-epochs {warmup_epochs:g} must be at least 0")
    # A preset's warm-up on a short run (--epochs 1 for a smoke test) takes at most half of it.
    warmup_epochs = min(warmup_epochs, total_epochs / 2)
    if progress_epochs < warmup_epochs:
        return (progress_epochs + 1e-3) / warmup_epochs  # never exactly 0: the first step still moves
    remaining = (progress_epochs - warmup_epochs) / (total_epochs - warmup_epochs)
    return 0.5 * (1.0 + math.cos(math.pi * min(max(remaining, 0.0), 1.0)))
