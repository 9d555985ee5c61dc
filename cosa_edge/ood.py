"""Is this image like the ones the model was trained on? A Mahalanobis score on the model's own features.

The features are texture statistics of the model's own encoder: the mean and standard
deviation over the image of each channel of its first three stages (cosa_edge/model/networks.py
``texture_statistics``). Early stages respond to texture, which is what sets ultrasound speckle
apart from photographs and screenshots; the last stage alone, after brief training, did not.
A Gaussian is fitted to them on the training images (Ledoit-Wolf shrinkage: a few hundred
images cannot pin down a 512-dimensional covariance on their own), and an image's score is
its squared Mahalanobis distance to it (Lee et al., NeurIPS 2018, use the same distance on
several layers' features). The threshold is chosen on held-out
validation images so that at least :data:`KEEP_IN_DISTRIBUTION` of them pass; an image
scoring above it gets no verdict. The exported graph computes the score itself (output
``ood_score``), so every engine scores alike. numpy only.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: The share of held-out in-distribution images the threshold lets through.
KEEP_IN_DISTRIBUTION = 0.99


def ledoit_wolf(features: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """(mean, shrunk covariance, shrinkage) of (N, D) features: the Ledoit-Wolf (2004) estimate."""
    x = np.asarray(features, np.float64)
    n, d = x.shape
    mean = x.mean(axis=0)
    centred = x - mean
    sample = centred.T @ centred / n
    target = np.trace(sample) / d  # shrink towards mu * I
    # beta: how far the sample covariance is from the truth (estimated from the data); delta: from the target.
    delta = float(((sample - target * np.eye(d)) ** 2).sum()) / d
    squares = centred**2
    beta = float((squares.T @ squares / n - sample**2).sum()) / (d * n)
    shrinkage = 0.0 if delta == 0 else min(beta, delta) / delta
    covariance = (1 - shrinkage) * sample + shrinkage * target * np.eye(d)
    return mean, covariance, float(shrinkage)


def fit_gaussian(features: np.ndarray) -> dict[str, Any]:
    """The mean and precision (inverse covariance) the score needs, fitted on training features."""
    features = np.asarray(features, np.float64)
    if features.ndim != 2 or len(features) < 2:
        raise ValueError(f"fitting the feature Gaussian needs at least two (N, D) feature vectors, "
                         f"got {features.shape}")
    mean, covariance, shrinkage = ledoit_wolf(features)
    if not np.trace(covariance) > 0:
        # All features equal (a constant model): any image that differs at all is out of distribution.
        covariance = np.eye(covariance.shape[0]) * 1e-6
    precision = np.linalg.pinv(covariance, hermitian=True)
    return {"mean": mean.astype(np.float32), "precision": precision.astype(np.float32), "shrinkage": shrinkage,
            "training_images": int(len(features))}


def mahalanobis(features: np.ndarray, mean: np.ndarray, precision: np.ndarray) -> np.ndarray:
    """Squared Mahalanobis distance of each row of (N, D) features, as the exported graph computes it."""
    difference = np.asarray(features, np.float64) - mean
    return ((difference @ precision) * difference).sum(axis=1)


def choose_threshold(scores: np.ndarray, keep: float = KEEP_IN_DISTRIBUTION, chosen_on: str = "") -> dict[str, Any]:
    """The smallest threshold that lets at least ``keep`` of these (held-out, in-distribution) scores through."""
    scores = np.sort(np.asarray(scores, np.float64))
    if scores.size == 0:
        raise ValueError("choosing the out-of-distribution threshold needs at least one held-out image")
    index = min(int(np.ceil(keep * scores.size)) - 1, scores.size - 1)
    return {"threshold": float(scores[index]), "chosen_on": chosen_on, "keep": keep,
            "kept": float((scores <= scores[index]).mean())}
