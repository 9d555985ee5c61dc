"""The one preprocessing path, shared by training, evaluation and inference.

A frame becomes model input in two steps: :func:`resize_grey` (any decoded
picture -> uint8 grey at the model's size) and :func:`normalise` (uint8 ->
float32 with the encoder's statistics). Training augments between the two;
everything else calls :func:`preprocess`, which is both.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .imageio import to_grey_uint8


@dataclass(frozen=True)
class Normalisation:
    """Grey-level statistics, on the 0..1 scale. The default is ImageNet's RGB statistics
    averaged over the three channels, which suits an encoder whose first convolution was
    summed over RGB to take one grey channel."""

    mean: float = 0.449
    std: float = 0.226


DEFAULT_NORMALISATION = Normalisation()
#: What Google's TensorFlow EfficientNet-Lite weights were trained with: (x - 127.5) / 127.5 on 0..255.
LITE_NORMALISATION = Normalisation(mean=0.5, std=0.5)


def normalisation_for(encoder: str) -> Normalisation:
    """The statistics an encoder's ImageNet weights expect (the default for ResNets, and for models trained from
    scratch with them, as every model before EfficientNet-Lite was)."""
    return LITE_NORMALISATION if encoder.startswith("efficientnet_lite") else DEFAULT_NORMALISATION


def resize_grey(image: np.ndarray, size: int, roi: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """Crop to ``roi`` (x, y, w, h) if given, convert to grey and resize to ``size`` x ``size`` (uint8)."""
    grey = to_grey_uint8(image)
    if roi is not None:
        x, y, w, h = roi
        grey = grey[y:y + h, x:x + w]
        if grey.size == 0:
            raise ValueError(f"region of interest {roi} lies outside the {image.shape[1]}x{image.shape[0]} frame")
    if grey.shape == (size, size):
        return grey
    # Area interpolation when shrinking: it averages speckle instead of aliasing it.
    shrinking = grey.shape[0] > size or grey.shape[1] > size
    return cv2.resize(grey, (size, size), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


def resize_mask(mask: np.ndarray, size: int) -> np.ndarray:
    """Nearest-neighbour resize of a bool mask (labels must not be interpolated)."""
    return cv2.resize(mask.astype(np.uint8), (size, size), interpolation=cv2.INTER_NEAREST).astype(bool)


def normalise(grey: np.ndarray, norm: Normalisation = DEFAULT_NORMALISATION) -> np.ndarray:
    """uint8 (..., H, W) -> float32 (..., 1, H, W) standardised."""
    scaled = grey.astype(np.float32) * np.float32(1.0 / 255.0)
    return ((scaled - np.float32(norm.mean)) / np.float32(norm.std))[..., None, :, :]


def preprocess(image: np.ndarray, size: int, norm: Normalisation = DEFAULT_NORMALISATION,
               roi: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """Any decoded frame -> float32 (1, size, size) model input."""
    return normalise(resize_grey(image, size, roi), norm)
