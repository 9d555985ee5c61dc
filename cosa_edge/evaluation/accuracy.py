"""How right an engine is on labelled images, scored as cross-validation scores a PyTorch model
(:func:`cosa_edge.train.evaluate.score`): each lesion probability map brought to the image's own size and
thresholded (:mod:`.masks`), Dice and mIoU per image averaged over the images that hold a lesion, accuracy and AUC
over those same images.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..data import Sample
from ..metrics import class_auc, segmentation_metrics_one
from .masks import mask_at_size
from .engine_outputs import EngineOutputs


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
        per_image = [segmentation_metrics_one(mask_at_size(outputs.lesion[i], samples[i].image.shape[:2]),
                                              samples[i].mask) for i in lesion_index]
        dice = float(np.mean([m["DSC"] for m in per_image]))
        miou = float(np.mean([m["mIoU"] for m in per_image]))
    if outputs.classes is not None and lesion_index:
        labels = np.array([samples[i].label for i in lesion_index])
        probabilities = outputs.classes[lesion_index]
        acc = float((probabilities.argmax(axis=1) == labels).mean())
        if len(set(labels.tolist())) == 2:
            area = class_auc(labels, probabilities)
    return EngineAccuracy(len(samples), len(lesion_index), dice, miou, acc, area)
