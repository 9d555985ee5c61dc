"""Run a model over samples and score it with the paper's metrics."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from .. import BENIGN
from ..data import Sample, preprocess
from ..evaluation.masks import mask_at_size
from ..metrics import (class_auc, classification_metrics, clinical_metrics, mean_segmentation_metrics,
                       segmentation_metrics_one)
from ..model import CLS_LOGITS, FEATURES, SEG_LOGITS, model_normalisation
from ..presence import DEFAULT_MIN_LESION_SHARE, lesion_share, presence_metrics
from ..progress import progress_bar


@dataclass
class Predictions:
    """What a model said about each sample: class probabilities and lesion masks at original size."""

    names: list[str]
    labels: np.ndarray
    probabilities: np.ndarray | None  # (N, 2)
    masks: list[np.ndarray] | None  # bool, each at its image's original size

    def to_records(self) -> list[dict[str, Any]]:
        records = []
        for i, name in enumerate(self.names):
            record: dict[str, Any] = {"name": name, "label": int(self.labels[i])}
            if self.probabilities is not None:
                record["probabilities"] = [float(p) for p in self.probabilities[i]]
            records.append(record)
        return records


@torch.no_grad()
def predict(model: nn.Module, samples: list[Sample], image_size: int, device: torch.device,
            batch_size: int = 16, progress: bool = False) -> Predictions:
    model.eval()
    norm = model_normalisation(model)
    probabilities: list[np.ndarray] = []
    masks: list[np.ndarray] = []
    tasks = getattr(model, "tasks", ())
    starts = range(0, len(samples), batch_size)
    for start in progress_bar(starts, desc="evaluating", unit="batch", disable=not progress, leave=False):
        chunk = samples[start:start + batch_size]
        batch = torch.from_numpy(np.stack([preprocess(s.image, image_size, norm) for s in chunk])).to(device)
        outputs = model(batch)
        if CLS_LOGITS in outputs:
            probabilities.append(torch.softmax(outputs[CLS_LOGITS].float(), dim=1).cpu().numpy())
        if SEG_LOGITS in outputs:
            lesion_probability = torch.softmax(outputs[SEG_LOGITS].float(), dim=1)[:, 1].cpu().numpy()
            for sample, prob in zip(chunk, lesion_probability):
                masks.append(mask_at_size(prob, sample.image.shape[:2]))
    return Predictions(
        names=[s.name for s in samples],
        labels=np.array([s.label for s in samples]),
        probabilities=np.concatenate(probabilities) if probabilities else None,
        masks=masks if masks or "segmentation" in tasks else None,
    )


@torch.no_grad()
def collect_features(model: nn.Module, images: list[np.ndarray], image_size: int, device: torch.device,
                     batch_size: int = 16) -> np.ndarray | None:
    """(N, D) features of each grey image (what the out-of-distribution score uses); None if the model has
    no such output."""
    model.eval()
    norm = model_normalisation(model)
    chunks = []
    for start in range(0, len(images), batch_size):
        batch = torch.from_numpy(np.stack([preprocess(image, image_size, norm)
                                           for image in images[start:start + batch_size]]))
        outputs = model(batch.to(device))
        if FEATURES not in outputs:
            return None
        chunks.append(outputs[FEATURES].float().cpu().numpy())
    return np.concatenate(chunks) if chunks else None


def presence_of(samples: list[Sample], predictions: Predictions) -> tuple[list[float], list[bool]]:
    """Each image's predicted lesion share and whether it truly holds a lesion."""
    if predictions.masks is None:
        return [], []
    return [lesion_share(m) for m in predictions.masks], [s.has_lesion for s in samples]


def score(samples: list[Sample], predictions: Predictions, min_lesion_share: float | None = None) -> dict[str, Any]:
    """The paper's metrics for whichever tasks the predictions cover.

    Segmentation and classification are scored on the images that hold a lesion (the paper's metrics
    divide by the lesion's area, and a lesion-free image has no class). Where lesion-free images are
    present, lesion presence is scored too, at ``min_lesion_share`` (the default without one).
    """
    lesion = np.array([s.has_lesion for s in samples], bool)
    result: dict[str, Any] = {"images": len(samples)}
    if not lesion.all():
        result["lesion_free_images"] = int((~lesion).sum())
    if predictions.masks is not None:
        per_image = [segmentation_metrics_one(m, s.mask) for m, s in zip(predictions.masks, samples) if s.has_lesion]
        if per_image:
            result["segmentation"] = mean_segmentation_metrics(per_image)
        if not lesion.all():
            shares, truth = presence_of(samples, predictions)
            threshold = DEFAULT_MIN_LESION_SHARE if min_lesion_share is None else min_lesion_share
            result["presence"] = presence_metrics(shares, truth, threshold)
    if predictions.probabilities is not None and lesion.any():
        labels = predictions.labels[lesion]
        predicted = predictions.probabilities[lesion].argmax(axis=1)
        result["classification_paper"] = classification_metrics(labels, predicted, positive=BENIGN)
        result["classification_clinical"] = clinical_metrics(labels, predicted)
        if len(set(labels.tolist())) == 2:
            result["auc"] = class_auc(labels, predictions.probabilities[lesion])
    return result


def selection_score(metrics: dict[str, Any]) -> float:
    """One number to pick the best epoch: the mean of DSC and accuracy over the tasks present."""
    parts = []
    if "segmentation" in metrics:
        parts.append(metrics["segmentation"]["DSC"])
    if "classification_paper" in metrics:
        parts.append(metrics["classification_paper"]["ACC"])
    return float(np.mean(parts)) if parts else float("nan")
