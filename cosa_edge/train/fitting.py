"""What training fits on its validation split besides the weights: the calibration temperature and the
out-of-distribution Gaussian with its threshold (the presence threshold is chosen in cosa_edge/presence.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..calibration import calibrate
from ..config import TrainConfig
from ..data import Sample
from ..data.augment import acquisition_view
from ..model import build_model
from ..ood import choose_threshold, fit_gaussian, mahalanobis
from .checkpoint import add_to_checkpoint, load_checkpoint
from .evaluate import Predictions, collect_features


#: The fewest validation images an out-of-distribution threshold is chosen on. The largest of n in-distribution
#: scores is exceeded by a new in-distribution image with probability 1/(n+1): 20 keeps that under 5%.
MIN_OOD_VALIDATION_IMAGES = 20
#: Other acquisitions of each training image the out-of-distribution Gaussian is fitted on (data/augment.py).
ACQUISITION_VIEWS = 2


def with_acquisition_views(samples: list[Sample], seed: int, stream: int) -> list[np.ndarray]:
    """The images and ACQUISITION_VIEWS other acquisitions of each (another aspect ratio, compression)."""
    images = [s.image for s in samples]
    for index, sample in enumerate(samples):
        images += [acquisition_view(sample.image, np.random.default_rng([seed, stream, index, k]))
                   for k in range(ACQUISITION_VIEWS)]
    return images


def fit_out_of_distribution(run_dir: Path, config: TrainConfig, train_samples: list[Sample],
                            val_samples: list[Sample], device: torch.device) -> None:
    """Give best.pt and last.pt the Gaussian of their own training features and a threshold (cosa_edge/ood.py).

    Each checkpoint gets its own: the features, and so the Gaussian, belong to its weights. Without enough
    validation images no threshold can be trusted, and the checkpoint records why it has no score.
    """
    paths = [run_dir / name for name in ("last.pt", "best.pt") if (run_dir / name).exists()]
    if len(val_samples) < MIN_OOD_VALIDATION_IMAGES:
        why = (f"none: {len(val_samples)} validation images, fewer than the {MIN_OOD_VALIDATION_IMAGES} a threshold "
               "needs" if val_samples else "none: training had no validation split")
        for path in paths:
            add_to_checkpoint(path, ood={"chosen_on": why})
        return
    fitted: dict[str, dict[str, Any]] = {}  # by weights hash: best.pt often holds last.pt's weights
    for path in paths:
        checkpoint = load_checkpoint(path)
        if checkpoint.weights_sha256 not in fitted:
            ood = _fit_gaussian_and_threshold(checkpoint.weights, config, train_samples, val_samples, device)
            if ood is None:
                continue  # a model without pooled features (VGG-16, LeNet) has no score
            fitted[checkpoint.weights_sha256] = ood
        add_to_checkpoint(path, ood=fitted[checkpoint.weights_sha256])


def _fit_gaussian_and_threshold(weights: dict[str, torch.Tensor], config: TrainConfig, train_samples: list[Sample],
                                val_samples: list[Sample], device: torch.device) -> dict[str, Any] | None:
    model = build_model(config.model)
    model.load_state_dict(weights)
    model.to(device)
    # The training images and two other acquisitions of each (aspect ratio, compression): differences that
    # every scanner and video link make are not what the score is for.
    training = collect_features(model, with_acquisition_views(train_samples, config.seed, 0),
                                config.model.image_size, device)
    if training is None or len(training) < 2:
        return None
    gaussian = fit_gaussian(training)
    held_out = collect_features(model, with_acquisition_views(val_samples, config.seed, 1),
                                config.model.image_size, device)
    threshold = choose_threshold(mahalanobis(held_out, gaussian["mean"], gaussian["precision"]),
                                 chosen_on=f"validation: {len(val_samples)} held-out images and "
                                           f"{ACQUISITION_VIEWS} other acquisitions of each")
    return {**threshold, "mean": torch.from_numpy(gaussian["mean"]),
            "precision": torch.from_numpy(gaussian["precision"]), "shrinkage": gaussian["shrinkage"],
            "training_images": gaussian["training_images"],
            "features": "mean and SD per channel of the encoder's first three stages"}


#: The fewest validation lesion images a temperature is fitted on; below it the probabilities stay unscaled.
MIN_CALIBRATION_IMAGES = 10


def fit_calibration(samples: list[Sample], predictions: Predictions) -> dict[str, Any] | None:
    """Temperature scaling fitted on the validation images that hold a lesion; None without any."""
    if predictions.probabilities is None:
        return None
    lesion = np.array([s.has_lesion for s in samples], bool)
    if lesion.sum() < MIN_CALIBRATION_IMAGES:
        # One temperature from a handful of images is noise (a single image drives it to the range's end).
        return {"temperature": 1.0, "fitted_on": f"none: {int(lesion.sum())} validation lesion images, fewer than "
                                                 f"the {MIN_CALIBRATION_IMAGES} a fit needs"}
    return calibrate(predictions.probabilities[lesion], predictions.labels[lesion],
                     fitted_on=f"validation: {int(lesion.sum())} lesion images")
