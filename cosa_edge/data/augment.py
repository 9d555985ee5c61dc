"""Training augmentations on uint8 grey images and their masks.

Each call takes its own generator, which the training loop seeds from
(seed, epoch, sample index): the same run gives the same augmented batches
in one process or many, and after a resume.
"""

from __future__ import annotations

import cv2
import numpy as np


def augment(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Horizontal flip, small affine, gain and contrast, and multiplicative speckle.

    No vertical flip: depth runs down the image, and shadowing below a lesion is
    one of the cues a classifier should learn.
    """
    height, width = image.shape
    if rng.random() < 0.5:
        image, mask = image[:, ::-1], mask[:, ::-1]
    angle = rng.uniform(-10, 10)
    scale = rng.uniform(0.9, 1.1)
    shift = rng.uniform(-0.05, 0.05, size=2) * (width, height)
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), angle, scale)
    matrix[:, 2] += shift
    image = cv2.warpAffine(np.ascontiguousarray(image), matrix, (width, height), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REFLECT_101)
    mask = cv2.warpAffine(np.ascontiguousarray(mask).astype(np.uint8), matrix, (width, height),
                          flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_REFLECT_101).astype(bool)
    gain, contrast = rng.uniform(0.85, 1.15), rng.uniform(0.85, 1.15)
    values = image.astype(np.float32)
    values = (values - values.mean()) * contrast + values.mean() * gain
    if rng.random() < 0.5:
        values *= rng.gamma(shape=16.0, scale=1 / 16.0, size=values.shape).astype(np.float32)
    return np.clip(values, 0, 255).astype(np.uint8), mask
