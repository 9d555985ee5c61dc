"""The training objective: the paper's two cross-entropies (Eq. 1), with the Dice and presence terms and class
weights of the recipes (docs/busi-cv.md)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .. import CLASS_NAMES, NO_LESION
from ..config import TrainConfig
from ..data import Sample
from ..errors import CosaEdgeError
from ..model import CLS_LOGITS, SEG_LOGITS


def multitask_loss(outputs: dict[str, torch.Tensor], masks: torch.Tensor, labels: torch.Tensor, config: TrainConfig,
                   class_weights: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """alpha * CE(segmentation) + beta * CE(classification) (paper Eq. 1); one term for single-task models.

    Lesion-free images (label NO_LESION) count in the segmentation term only: they have no class.
    """
    terms: dict[str, torch.Tensor] = {}
    if SEG_LOGITS in outputs:
        terms["seg_loss"] = F.cross_entropy(outputs[SEG_LOGITS].float(), masks)
        if config.dice_weight > 0:
            terms["dice_loss"] = soft_dice_loss(outputs[SEG_LOGITS].float(), masks)
        if config.presence_weight > 0:
            terms["presence_loss"] = presence_loss(outputs[SEG_LOGITS].float(), masks)
    if CLS_LOGITS in outputs:
        logits = outputs[CLS_LOGITS].float()
        known = labels != NO_LESION
        # A batch of lesion-free images only still passes through the classifier (0 x its logits), so that
        # every parameter gets a gradient, as DistributedDataParallel expects of each step.
        terms["cls_loss"] = F.cross_entropy(logits[known], labels[known], weight=class_weights) if known.any() \
            else logits.sum() * 0.0
    if "seg_loss" in terms and "cls_loss" in terms:
        loss = config.seg_weight * terms["seg_loss"] + config.cls_weight * terms["cls_loss"]
    else:
        loss = terms.get("seg_loss", terms.get("cls_loss"))
    if "dice_loss" in terms:
        loss = loss + config.dice_weight * terms["dice_loss"]
    if "presence_loss" in terms:
        loss = loss + config.presence_weight * terms["presence_loss"]
    return loss, {k: float(v.detach()) for k, v in terms.items()}


#: The presence term scores an image by the mean lesion probability of this share of its pixels, the most
#: lesion-like ones: about the smallest lesion the presence rule keeps (docs/busi-cv.md: thresholds of 0.1-0.6%
#: of the image), so one confident speck does not make a lesion and a small real lesion still counts whole.
PRESENCE_TOP_SHARE = 0.005


def presence_loss(seg_logits: torch.Tensor, masks: torch.Tensor, top_share: float = PRESENCE_TOP_SHARE) -> torch.Tensor:
    """Binary cross-entropy of each image's presence score against whether its mask holds a lesion.

    The score is the mean lesion probability of the image's ``top_share`` most lesion-like pixels. Pixel
    cross-entropy lets a lesion-free image keep a few percent of false lesion pixels cheaply (they are few among
    all pixels), and the Dice term never sees such an image; but the presence rule asks exactly whether any
    region is lesion-like enough, so this term asks the same question of the mask while training.
    """
    lesion = torch.softmax(seg_logits, dim=1)[:, 1].flatten(1)
    top = max(1, int(round(top_share * lesion.shape[1])))
    score = lesion.topk(top, dim=1).values.mean(dim=1).clamp(1e-6, 1 - 1e-6)
    holds_lesion = ((masks == 1).flatten(1).sum(1) > 0).float()
    return F.binary_cross_entropy(score, holds_lesion)


def soft_dice_loss(seg_logits: torch.Tensor, masks: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """1 - the mean, over the images that hold a lesion, of the soft Dice of the lesion probability against the mask.

    Per image, so that a small lesion weighs as much as a large one. Lesion-free images (BUSI's normal ones) take
    no part: on an empty mask the Dice is 0 for any false lesion, large or small, so its loss sits at 1 with next to
    no gradient, while the lesion images' Dice rewards generous masks; together they taught a model to draw a
    lesion on every normal image (fold 0: all 26 normal test images). The pixel cross-entropy, which does see
    every false pixel, is what keeps lesion-free images empty. A batch without a lesion gives 0.
    """
    truth = (masks == 1).float()
    holds_lesion = truth.flatten(1).sum(1) > 0
    if not holds_lesion.any():
        return seg_logits.sum() * 0.0  # keeps the graph (and DDP's gradient hooks) intact
    lesion = torch.softmax(seg_logits, dim=1)[:, 1][holds_lesion]
    truth = truth[holds_lesion]
    overlap = (lesion * truth).flatten(1).sum(1)
    total = lesion.flatten(1).sum(1) + truth.flatten(1).sum(1)
    return 1.0 - ((2.0 * overlap + smooth) / (total + smooth)).mean()


def balanced_class_weights(samples: list[Sample]) -> torch.Tensor:
    """Inverse class frequency over the lesion images, scaled so that a balanced set gets weights of 1."""
    counts = np.bincount([s.label for s in samples if s.has_lesion], minlength=len(CLASS_NAMES)).astype(np.float64)
    if (counts == 0).any():
        raise CosaEdgeError("--balance-classes needs lesion images of every class; the training set has "
                            f"{counts.tolist()}")
    return torch.tensor(counts.sum() / (len(counts) * counts), dtype=torch.float32)
