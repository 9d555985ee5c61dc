"""The COSA region maps, in numpy and OpenCV: the specification every other implementation
(the PyTorch op in the model, the CUDA kernel) is tested against, exactly.

From a two-class segmentation output (logits or probabilities, (2, H, W)):

1. lesion = argmax over the two classes; a tie is background (class 0), as
   ``argmax`` returns the first maximum;
2. contour = pixels where the 3x3 Sobel response of the 0/1 lesion mask is not
   zero in x or y. The mask is padded by replicating its border, so a lesion
   that touches the image edge gets no false contour along the edge;
3. margin = the contour dilated by a 5x5 square (zero outside the image);
4. tumour = lesion and not margin; background = not lesion and not margin.
   The three maps are disjoint and add up to one at every pixel;
5. each map is area-averaged onto the C5 grid (H/s, W/s): each cell holds the
   fraction of its s x s pixels in that region. Nearest or bilinear sampling
   would lose the ~5-pixel margin band; area averaging keeps it.

Sobel responses of a 0/1 image are small integers, so every step is exact and
implementations can be compared for equality, not closeness.
"""

from __future__ import annotations

import cv2
import numpy as np

#: Channel order of the region maps everywhere in cosa-edge.
REGION_NAMES: tuple[str, str, str] = ("background", "tumour", "margin")

_SOBEL_X = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=np.float32)
_SOBEL_Y = _SOBEL_X.T.copy()
MARGIN_KERNEL = 5


def lesion_from_scores(scores: np.ndarray) -> np.ndarray:
    """(2, H, W) scores -> bool lesion mask; ties go to background."""
    if scores.ndim != 3 or scores.shape[0] != 2:
        raise ValueError(f"expected segmentation scores of shape (2, H, W), got {scores.shape}")
    return scores[1] > scores[0]


def region_maps_full(lesion: np.ndarray) -> np.ndarray:
    """bool (H, W) lesion -> float32 (3, H, W) one-hot background / tumour / margin."""
    mask = lesion.astype(np.float32)
    gx = cv2.filter2D(mask, -1, _SOBEL_X, borderType=cv2.BORDER_REPLICATE)
    gy = cv2.filter2D(mask, -1, _SOBEL_Y, borderType=cv2.BORDER_REPLICATE)
    contour = ((gx != 0) | (gy != 0)).astype(np.uint8)
    margin = cv2.dilate(contour, np.ones((MARGIN_KERNEL, MARGIN_KERNEL), np.uint8),
                        borderType=cv2.BORDER_CONSTANT, borderValue=0).astype(bool)
    tumour = lesion & ~margin
    background = ~lesion & ~margin
    return np.stack([background, tumour, margin]).astype(np.float32)


def area_average(maps: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """(C, H, W) -> (C, h, w): the mean of each (H/h) x (W/w) cell."""
    channels, height, width = maps.shape
    h, w = grid
    if height % h or width % w:
        raise ValueError(f"a {height}x{width} map does not tile into a {h}x{w} grid")
    return maps.reshape(channels, h, height // h, w, width // w).mean(axis=(2, 4), dtype=np.float64).astype(np.float32)


def region_maps(scores: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """Segmentation scores (N, 2, H, W) or (2, H, W) -> region fractions on ``grid``: (N, 3, h, w) or (3, h, w)."""
    if scores.ndim == 4:
        return np.stack([region_maps(s, grid) for s in scores])
    return area_average(region_maps_full(lesion_from_scores(scores)), grid)
