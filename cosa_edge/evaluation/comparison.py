"""How far apart two engines answer on the same images: one comparison for every use.

An FP16 engine is held to its FP32 model (:func:`check_fp16_fidelity`, at build time), an export to PyTorch
(cosa_edge.export.parity, with tighter tolerances), an INT8 engine to its FP32 model with each one's accuracy and
the build-time limits (:class:`Fidelity`), and engines of one model measured together (cosa_edge.bench.scores).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import BENIGN, MALIGNANT
from ..data import Sample
from ..errors import CosaEdgeError
from ..presence import DEFAULT_MIN_LESION_SHARE, lesion_present, lesion_share
from .accuracy import EngineAccuracy, accuracy_of

if TYPE_CHECKING:  # a type only: evaluation sits below the runtimes, which call it to check their builds
    from ..engines.base import Engine
from .masks import MASK_THRESHOLD
from .engine_outputs import EngineOutputs, frames_of, run_engine, run_frames

FP16_PROBABILITY_TOLERANCE = 1e-2
FP16_DICE_AGREEMENT = 0.99

#: The build-time gate of an INT8 engine against its FP32 model (docs/deployment.md): at most this share of the
#: check images may change class, lesion presence, or (on its own) go from malignant to benign.
MAX_CLASS_FLIP_SHARE = 0.01
MAX_MALIGNANT_TO_BENIGN_SHARE = 0.01
MAX_PRESENCE_FLIP_SHARE = 0.01
#: ...and the two engines' lesion masks must agree at least this well (Dice between them, pooled over images).
MIN_MASK_DICE_AGREEMENT = 0.95


@dataclass(frozen=True)
class Agreement:
    """What changes from a reference engine's answers to a candidate's on the same images."""

    images: int
    max_probability_difference: float  # over class probabilities and lesion probabilities
    mask_agreement: float  # share of pixels whose mask (probability > 0.5) is the same
    mask_dice_agreement: float  # Dice between the two engines' lesion masks, pooled over images
    same_class: float  # share of images with the same predicted class
    class_flips: dict[str, int]  # "benign_to_malignant", "malignant_to_benign": by the reference's class
    presence_flips: dict[str, int]  # "lesion_to_none", "none_to_lesion"

    def passes(self, probability_tolerance: float, mask_agreement: float) -> bool:
        return (self.max_probability_difference <= probability_tolerance and self.mask_agreement >= mask_agreement
                and self.same_class == 1.0)

    def changes(self) -> dict[str, Any]:
        """The flips, the masks' Dice agreement and the largest probability difference, as reports record them."""
        return {"class_flips": self.class_flips, "presence_flips": self.presence_flips,
                "mask_dice_agreement": self.mask_dice_agreement,
                "max_probability_difference": self.max_probability_difference}


def compare_outputs(a: EngineOutputs, b: EngineOutputs, min_lesion_share: float | None) -> Agreement:
    """What changes from outputs ``a`` (the reference) to ``b`` on the same images: classes by direction, lesion
    presence (at the reference's presence threshold), mask agreement, the largest probability difference."""
    count = len(a.classes) if a.classes is not None else len(a.lesion) if a.lesion is not None else 0
    flips = {"benign_to_malignant": 0, "malignant_to_benign": 0}
    presence = {"lesion_to_none": 0, "none_to_lesion": 0}
    max_diff, same, pixel_agreement, dice_agreement = 0.0, count, 1.0, 1.0
    if a.classes is not None and b.classes is not None and count:
        was, now = a.classes.argmax(axis=1), b.classes.argmax(axis=1)
        flips["benign_to_malignant"] = int(((was == BENIGN) & (now == MALIGNANT)).sum())
        flips["malignant_to_benign"] = int(((was == MALIGNANT) & (now == BENIGN)).sum())
        same = int((was == now).sum())
        max_diff = float(np.abs(a.classes - b.classes).max())
    if a.lesion is not None and b.lesion is not None and count:
        threshold = DEFAULT_MIN_LESION_SHARE if min_lesion_share is None else float(min_lesion_share)
        mask_a, mask_b = a.lesion > MASK_THRESHOLD, b.lesion > MASK_THRESHOLD
        for one, other in zip(mask_a, mask_b):
            had, has = (lesion_present(lesion_share(m), threshold) for m in (one, other))
            presence["lesion_to_none"] += int(had and not has)
            presence["none_to_lesion"] += int(has and not had)
        pixel_agreement = float((mask_a == mask_b).mean()) if mask_a.size else 1.0
        total = int(mask_a.sum() + mask_b.sum())
        dice_agreement = 2 * int((mask_a & mask_b).sum()) / total if total else 1.0
        max_diff = max(max_diff, float(np.abs(a.lesion - b.lesion).max()))
    return Agreement(images=count, max_probability_difference=max_diff, mask_agreement=pixel_agreement,
                     mask_dice_agreement=dice_agreement, same_class=same / count if count else 1.0,
                     class_flips=flips, presence_flips=presence)


def compare_engines(reference: Engine, candidate: Engine, frames: np.ndarray, batch_size: int = 8) -> Agreement:
    """Run both engines on the same frames and measure how far apart they are."""
    a, b = run_frames(reference, frames, batch_size), run_frames(candidate, frames, batch_size)
    return compare_outputs(a, b, reference.metadata.presence.get("min_lesion_share"))


def check_fp16_fidelity(fp32_engine: Engine, fp16_engine: Engine, samples: list[Sample]) -> Agreement:
    """An FP16 engine against the FP32 model on the same frames: Dice agreement and probability distance."""
    agreement = compare_engines(fp32_engine, fp16_engine, frames_of(samples, fp32_engine.input_size))
    if (agreement.max_probability_difference > FP16_PROBABILITY_TOLERANCE
            or agreement.mask_dice_agreement < FP16_DICE_AGREEMENT):
        raise CosaEdgeError(f"the FP16 engine strays from FP32 beyond tolerance (probabilities within "
                            f"{FP16_PROBABILITY_TOLERANCE}, mask Dice >= {FP16_DICE_AGREEMENT}): {agreement}")
    return agreement


def _int8_limits() -> dict[str, float]:
    return {"max_class_flip_share": MAX_CLASS_FLIP_SHARE,
            "max_malignant_to_benign_share": MAX_MALIGNANT_TO_BENIGN_SHARE,
            "max_presence_flip_share": MAX_PRESENCE_FLIP_SHARE, "min_mask_dice_agreement": MIN_MASK_DICE_AGREEMENT}


@dataclass(frozen=True)
class Fidelity(Agreement):
    """A quantized (or otherwise converted) engine against its FP32 reference on the same images, with each one's
    accuracy and the limits it is held to."""

    reference: EngineAccuracy | None = None
    candidate: EngineAccuracy | None = None
    limits: dict[str, float] = field(default_factory=_int8_limits)

    def failures(self) -> list[str]:
        """Each limit the candidate breaks, in words; empty when it passes."""
        n, limits, found = max(self.images, 1), self.limits, []
        flips = sum(self.class_flips.values())
        if flips / n > limits["max_class_flip_share"]:
            found.append(f"{flips} of {self.images} images change class (limit {limits['max_class_flip_share']:.0%})")
        to_benign = self.class_flips["malignant_to_benign"]
        if to_benign / n > limits["max_malignant_to_benign_share"]:
            found.append(f"{to_benign} malignant images turn benign (limit "
                         f"{limits['max_malignant_to_benign_share']:.0%} of the images)")
        presence = sum(self.presence_flips.values())
        if presence / n > limits["max_presence_flip_share"]:
            found.append(f"{presence} of {self.images} images change lesion presence "
                         f"(limit {limits['max_presence_flip_share']:.0%})")
        if self.mask_dice_agreement < limits["min_mask_dice_agreement"]:
            found.append(f"the lesion masks agree with Dice {self.mask_dice_agreement:.3f} "
                         f"(limit {limits['min_mask_dice_agreement']})")
        return found

    def to_dict(self) -> dict[str, Any]:
        """As an engine's metadata records the check (the same keys engines built before this record carry)."""
        assert self.reference is not None and self.candidate is not None
        return {"images": self.images, **self.changes(), "reference": self.reference.to_dict(),
                "candidate": self.candidate.to_dict(), "limits": self.limits, "passed": not self.failures()}


def compare_to_reference(reference: Engine, candidate: Engine, samples: list[Sample]) -> Fidelity:
    """Run both engines on ``samples`` and count what changes (:func:`compare_outputs`), with each one's accuracy."""
    a, b = run_engine(reference, samples), run_engine(candidate, samples)
    changes = compare_outputs(a, b, reference.metadata.presence.get("min_lesion_share"))
    return Fidelity(**vars(changes), reference=accuracy_of(a, samples), candidate=accuracy_of(b, samples))
