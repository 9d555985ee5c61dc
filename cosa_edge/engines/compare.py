"""How far apart are two engines on the same frames? The runtime side's own comparison, torch-free.

Used by ``cosa-edge build-engine`` to check a built engine against the FP32
model (:func:`check_fp16_fidelity`), and by the export side's parity check
(:mod:`cosa_edge.export.parity`), which compares against the PyTorch reference.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..contract import CLASS_OUTPUT, LESION_OUTPUT, stack_frames
from ..data import Sample, resize_grey
from ..errors import CosaEdgeError
from .base import Engine

FP16_PROBABILITY_TOLERANCE = 1e-2
FP16_DICE_AGREEMENT = 0.99


@dataclass(frozen=True)
class Agreement:
    images: int
    max_probability_difference: float
    mask_agreement: float  # share of pixels whose mask (probability > 0.5) is the same
    mask_dice_agreement: float  # Dice between the two engines' lesion masks, pooled over images
    same_class: float  # share of images with the same predicted class

    def passes(self, probability_tolerance: float, mask_agreement: float) -> bool:
        return (self.max_probability_difference <= probability_tolerance and self.mask_agreement >= mask_agreement
                and self.same_class == 1.0)


def frames_of(samples: list[Sample], size: int) -> np.ndarray:
    """Samples -> one engine input batch of their images resized to ``size``."""
    return stack_frames([resize_grey(s.image, size) for s in samples])


@dataclass(frozen=True)
class EngineOutputs:
    """One engine's answers on a batch of frames, at the model's resolution (None: the engine has no such output)."""

    lesion: np.ndarray | None  # float32 (N, S, S) lesion probability
    classes: np.ndarray | None  # float32 (N, 2) class probabilities


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


def compare_engines(reference: Engine, candidate: Engine, frames: np.ndarray, batch_size: int = 8) -> Agreement:
    """Run both engines on the same frames and measure how far apart they are."""
    a, b = run_frames(reference, frames, batch_size), run_frames(candidate, frames, batch_size)
    count, max_diff, same = len(frames), 0.0, len(frames)
    mask_agreement = dice_agreement = 1.0
    if a.classes is not None and b.classes is not None:
        max_diff = float(np.abs(a.classes - b.classes).max()) if count else 0.0
        same = int((a.classes.argmax(1) == b.classes.argmax(1)).sum())
    if a.lesion is not None and b.lesion is not None:
        max_diff = max(max_diff, float(np.abs(a.lesion - b.lesion).max()) if count else 0.0)
        mask_a, mask_b = a.lesion > 0.5, b.lesion > 0.5
        mask_agreement = float((mask_a == mask_b).mean()) if mask_a.size else 1.0
        total = int(mask_a.sum() + mask_b.sum())
        dice_agreement = 2 * int((mask_a & mask_b).sum()) / total if total else 1.0
    return Agreement(images=count, max_probability_difference=max_diff, mask_agreement=mask_agreement,
                     mask_dice_agreement=dice_agreement, same_class=same / count if count else 1.0)


def check_fp16_fidelity(fp32_engine: Engine, fp16_engine: Engine, samples: list[Sample]) -> Agreement:
    """An FP16 engine against the FP32 model on the same frames: Dice agreement and probability distance."""
    agreement = compare_engines(fp32_engine, fp16_engine, frames_of(samples, fp32_engine.input_size))
    if agreement.max_probability_difference > FP16_PROBABILITY_TOLERANCE or agreement.mask_dice_agreement < FP16_DICE_AGREEMENT:
        raise CosaEdgeError(f"the FP16 engine strays from FP32 beyond tolerance (probabilities within "
                            f"{FP16_PROBABILITY_TOLERANCE}, mask Dice >= {FP16_DICE_AGREEMENT}): {agreement}")
    return agreement
