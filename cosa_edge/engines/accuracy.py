"""How right an engine is on labelled images, and how far a quantized engine strays from its FP32 model.

Torch-free: engines only, scored as the cross-validation scores a PyTorch model
(:func:`cosa_edge.train.evaluate.score`): each lesion probability map resized to
the image's own size and thresholded at 0.5, Dice and mIoU per image averaged
over the images that hold a lesion, accuracy and AUC over those same images.

Used by ``cosa-edge build-engine --precision int8`` (the build-time gate) and by
``cosa-edge bench --check-data`` (accuracy beside latency).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import cv2
import numpy as np

from .. import BENIGN, MALIGNANT
from ..data import Sample
from ..metrics import auc, roc_curve, segmentation_metrics_one
from ..presence import DEFAULT_MIN_LESION_SHARE, lesion_present, lesion_share
from .base import Engine
from .compare import EngineOutputs, frames_of, run_frames

#: The build-time gate of an INT8 engine against its FP32 model (docs/deployment.md): at most this share of the
#: check images may change class, lesion presence, or (on its own) go from malignant to benign.
MAX_CLASS_FLIP_SHARE = 0.01
MAX_MALIGNANT_TO_BENIGN_SHARE = 0.01
MAX_PRESENCE_FLIP_SHARE = 0.01
#: ...and the two engines' lesion masks must agree at least this well (Dice between them, pooled over images).
MIN_MASK_DICE_AGREEMENT = 0.95


def run_engine(engine: Engine, samples: list[Sample], batch_size: int = 8) -> EngineOutputs:
    """``engine``'s answers on ``samples``, resized by the one preprocessing function."""
    return run_frames(engine, frames_of(samples, engine.input_size), batch_size)


@dataclass(frozen=True)
class EngineAccuracy:
    """Against the ground truth. ``dice``, ``miou``, ``acc`` and ``auc`` are fractions over the images with a
    lesion (None where the engine has no such output, or AUC where one class is missing)."""

    images: int
    lesion_images: int
    dice: float | None
    miou: float | None
    acc: float | None
    auc: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def accuracy_of(outputs: EngineOutputs, samples: list[Sample]) -> EngineAccuracy:
    lesion_index = [i for i, s in enumerate(samples) if s.has_lesion]
    dice = miou = acc = area = None
    if outputs.lesion is not None and lesion_index:
        per_image = []
        for i in lesion_index:
            height, width = samples[i].image.shape
            mask = cv2.resize(outputs.lesion[i], (width, height), interpolation=cv2.INTER_LINEAR) > 0.5
            per_image.append(segmentation_metrics_one(mask, samples[i].mask))
        dice = float(np.mean([m["DSC"] for m in per_image]))
        miou = float(np.mean([m["mIoU"] for m in per_image]))
    if outputs.classes is not None and lesion_index:
        labels = np.array([samples[i].label for i in lesion_index])
        probabilities = outputs.classes[lesion_index]
        acc = float((probabilities.argmax(axis=1) == labels).mean())
        if len(set(labels.tolist())) == 2:
            fpr, tpr, _ = roc_curve(labels, probabilities[:, MALIGNANT], positive=MALIGNANT)
            area = auc(fpr, tpr)
    return EngineAccuracy(len(samples), len(lesion_index), dice, miou, acc, area)


@dataclass(frozen=True)
class Fidelity:
    """A quantized (or otherwise converted) engine against its FP32 reference on the same images."""

    images: int
    class_flips: dict[str, int]  # "benign_to_malignant", "malignant_to_benign": by the reference's class
    presence_flips: dict[str, int]  # "lesion_to_none", "none_to_lesion"
    mask_dice_agreement: float  # Dice between the two engines' masks (probability > 0.5), pooled over images
    max_probability_difference: float  # over class probabilities and lesion probabilities
    reference: EngineAccuracy
    candidate: EngineAccuracy
    limits: dict[str, float] = field(default_factory=lambda: {
        "max_class_flip_share": MAX_CLASS_FLIP_SHARE, "max_malignant_to_benign_share": MAX_MALIGNANT_TO_BENIGN_SHARE,
        "max_presence_flip_share": MAX_PRESENCE_FLIP_SHARE, "min_mask_dice_agreement": MIN_MASK_DICE_AGREEMENT})

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
        return {"images": self.images, "class_flips": self.class_flips, "presence_flips": self.presence_flips,
                "mask_dice_agreement": self.mask_dice_agreement,
                "max_probability_difference": self.max_probability_difference,
                "reference": self.reference.to_dict(), "candidate": self.candidate.to_dict(), "limits": self.limits,
                "passed": not self.failures()}


def compare_outputs(a: EngineOutputs, b: EngineOutputs, min_lesion_share: float | None) -> dict[str, Any]:
    """What changes from outputs ``a`` (the reference) to ``b`` on the same images: classes by direction, lesion
    presence (at the reference's presence threshold), mask agreement, the largest probability difference."""
    flips = {"benign_to_malignant": 0, "malignant_to_benign": 0}
    presence = {"lesion_to_none": 0, "none_to_lesion": 0}
    max_diff, intersection, total = 0.0, 0, 0
    if a.classes is not None and b.classes is not None:
        was, now = a.classes.argmax(axis=1), b.classes.argmax(axis=1)
        flips["benign_to_malignant"] = int(((was == BENIGN) & (now == MALIGNANT)).sum())
        flips["malignant_to_benign"] = int(((was == MALIGNANT) & (now == BENIGN)).sum())
        max_diff = float(np.abs(a.classes - b.classes).max())
    if a.lesion is not None and b.lesion is not None:
        threshold = DEFAULT_MIN_LESION_SHARE if min_lesion_share is None else float(min_lesion_share)
        mask_a, mask_b = a.lesion > 0.5, b.lesion > 0.5
        for one, other in zip(mask_a, mask_b):
            had, has = (lesion_present(lesion_share(m), threshold) for m in (one, other))
            presence["lesion_to_none"] += int(had and not has)
            presence["none_to_lesion"] += int(has and not had)
        intersection, total = int((mask_a & mask_b).sum()), int(mask_a.sum() + mask_b.sum())
        max_diff = max(max_diff, float(np.abs(a.lesion - b.lesion).max()))
    return {"class_flips": flips, "presence_flips": presence,
            "mask_dice_agreement": 2 * intersection / total if total else 1.0, "max_probability_difference": max_diff}


def compare_to_reference(reference: Engine, candidate: Engine, samples: list[Sample]) -> Fidelity:
    """Run both engines on ``samples`` and count what changes (:func:`compare_outputs`), with each one's accuracy."""
    a, b = run_engine(reference, samples), run_engine(candidate, samples)
    changes = compare_outputs(a, b, reference.metadata.presence.get("min_lesion_share"))
    return Fidelity(images=len(samples), **changes, reference=accuracy_of(a, samples), candidate=accuracy_of(b, samples))
