"""Training augmentations on uint8 grey images and their masks.

Each call takes its own generator, which the training loop seeds from
(seed, epoch, sample index): the same run gives the same augmented batches
in one process or many, and after a resume.
"""

from __future__ import annotations

import cv2
import numpy as np


def acquisition_view(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The same tissue as another acquisition might deliver it: a field of view of another aspect ratio (which
    the model's square input stretches) and lossy video compression.

    Used to fit the out-of-distribution score, so that these ordinary differences are not called unusual.
    """
    height, width = image.shape
    aspect = float(np.exp(rng.uniform(np.log(0.75), np.log(1.33))))
    crop_h, crop_w = (height, max(8, int(width / aspect))) if aspect > 1 else (max(8, int(height * aspect)), width)
    crop_h, crop_w = min(crop_h, height), min(crop_w, width)
    y, x = int(rng.integers(0, height - crop_h + 1)), int(rng.integers(0, width - crop_w + 1))
    view = cv2.resize(np.ascontiguousarray(image[y:y + crop_h, x:x + crop_w]), (width, height),
                      interpolation=cv2.INTER_AREA)
    ok, data = cv2.imencode(".jpg", view, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(50, 96))])
    return cv2.imdecode(data, cv2.IMREAD_GRAYSCALE) if ok else view


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
