"""A lesion probability map at the model's resolution, brought to the size of the image it was computed from.

Every score and every streamed result uses these two functions, so that the mask a report scores is the mask the
stream draws: bilinear interpolation of the probability, then ``> 0.5``.
"""

from __future__ import annotations

import cv2
import numpy as np

#: A pixel belongs to the lesion where its probability is above this.
MASK_THRESHOLD = 0.5


def probability_at_size(probability: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(S, S) lesion probability -> float32 (height, width), bilinear."""
    height, width = shape
    return cv2.resize(probability.astype(np.float32, copy=False), (width, height), interpolation=cv2.INTER_LINEAR)


def mask_at_size(probability: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(S, S) lesion probability -> the boolean lesion mask at (height, width)."""
    return probability_at_size(probability, shape) > MASK_THRESHOLD
