"""Crafted lesion masks for the region-map tests, torch-free so that every implementation's tests share them."""

from __future__ import annotations

import numpy as np


def scores_for(lesion: np.ndarray) -> np.ndarray:
    """Two-class scores (2, H, W) whose argmax is ``lesion``, with no ties."""
    return np.stack([np.where(lesion, -1.0, 1.0), np.where(lesion, 1.0, -1.0)]).astype(np.float32)


def disc(size: int, centre: tuple[int, int], radius: int) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius**2


def crafted_masks(size: int = 64) -> dict[str, np.ndarray]:
    """The cases where region maps go wrong first, scaled to any size (the numbers in comments are for 64)."""
    empty = np.zeros((size, size), bool)
    border = empty.copy()
    border[: size * 5 // 16, size * 5 // 32: size * 5 // 8] = True  # rows 0..19, cols 10..39: touches the top edge
    stripe = empty.copy()
    stripe[:, 0] = True  # one pixel wide, along the left edge
    one_pixel = empty.copy()
    one_pixel[size // 2 - 2, size // 2 + 1] = True
    corner = empty.copy()
    corner[size - 9:, size - 9:] = True
    return {
        "empty": empty,
        "full": np.ones((size, size), bool),
        "touches_border": border,
        "stripe_on_edge": stripe,
        "two_lesions": disc(size, (size // 4, size // 4), size // 8)
        | disc(size, (size * 45 // 64, size * 44 // 64), size * 11 // 64),
        "one_pixel": one_pixel,
        "corner": corner,
    }
