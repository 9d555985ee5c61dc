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


def compare_engines(reference: Engine, candidate: Engine, frames: np.ndarray, batch_size: int = 8) -> Agreement:
    """Run both engines on the same frames and measure how far apart they are."""
    max_diff, equal_pixels, pixels, intersection, mask_sum, same, count = 0.0, 0, 0, 0, 0, 0, 0
    for start in range(0, len(frames), batch_size):
        batch = frames[start:start + batch_size]
        a, b = reference.infer(batch), candidate.infer(batch)
        if CLASS_OUTPUT in a:
            max_diff = max(max_diff, float(np.abs(a[CLASS_OUTPUT] - b[CLASS_OUTPUT]).max()))
            same += int((a[CLASS_OUTPUT].argmax(1) == b[CLASS_OUTPUT].argmax(1)).sum())
        else:
            same += len(batch)
        if LESION_OUTPUT in a:
            max_diff = max(max_diff, float(np.abs(a[LESION_OUTPUT] - b[LESION_OUTPUT]).max()))
            mask_a, mask_b = a[LESION_OUTPUT] > 0.5, b[LESION_OUTPUT] > 0.5
            equal_pixels += int((mask_a == mask_b).sum())
            pixels += mask_a.size
            intersection += int((mask_a & mask_b).sum())
            mask_sum += int(mask_a.sum() + mask_b.sum())
        count += len(batch)
    return Agreement(images=count, max_probability_difference=max_diff,
                     mask_agreement=equal_pixels / pixels if pixels else 1.0,
                     mask_dice_agreement=2 * intersection / mask_sum if mask_sum else 1.0,
                     same_class=same / count if count else 1.0)


def check_fp16_fidelity(fp32_engine: Engine, fp16_engine: Engine, samples: list[Sample]) -> Agreement:
    """An FP16 engine against the FP32 model on the same frames: Dice agreement and probability distance."""
    agreement = compare_engines(fp32_engine, fp16_engine, frames_of(samples, fp32_engine.input_size))
    if agreement.max_probability_difference > FP16_PROBABILITY_TOLERANCE or agreement.mask_dice_agreement < FP16_DICE_AGREEMENT:
        raise CosaEdgeError(f"the FP16 engine strays from FP32 beyond tolerance (probabilities within "
                            f"{FP16_PROBABILITY_TOLERANCE}, mask Dice >= {FP16_DICE_AGREEMENT}): {agreement}")
    return agreement
