"""One engine's answers on a set of images, gathered batch by batch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..contract import CLASS_OUTPUT, LESION_OUTPUT, stack_frames
from ..data import Sample, resize_grey

if TYPE_CHECKING:  # a type only: evaluation sits below the runtimes, which call it to check their builds
    from ..engines.base import Engine


@dataclass(frozen=True)
class EngineOutputs:
    """One engine's answers on a batch of frames, at the model's resolution (None: the engine has no such output)."""

    lesion: np.ndarray | None  # float32 (N, S, S) lesion probability
    classes: np.ndarray | None  # float32 (N, 2) class probabilities


def frames_of(samples: list[Sample], size: int) -> np.ndarray:
    """Samples -> one engine input batch of their images resized to ``size``."""
    return stack_frames([resize_grey(s.image, size) for s in samples])


def run_frames(engine: Engine, frames: np.ndarray, batch_size: int = 8) -> EngineOutputs:
    """Run ``engine`` over ``frames`` in batches and gather its lesion and class outputs."""
    lesion, classes = [], []
    for start in range(0, len(frames), batch_size):
        outputs = engine.infer(frames[start:start + batch_size])
        if LESION_OUTPUT in outputs:
            lesion.append(outputs[LESION_OUTPUT][:, 0])
        if CLASS_OUTPUT in outputs:
            classes.append(outputs[CLASS_OUTPUT])
    return EngineOutputs(np.concatenate(lesion) if lesion else None, np.concatenate(classes) if classes else None)


def run_engine(engine: Engine, samples: list[Sample], batch_size: int = 8) -> EngineOutputs:
    """``engine``'s answers on ``samples``, resized by the one preprocessing function."""
    return run_frames(engine, frames_of(samples, engine.input_size), batch_size)
