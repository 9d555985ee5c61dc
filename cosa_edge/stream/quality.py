"""The quality gate: frames the model was not made for get no verdict at all.

Checked on the region of interest of each frame as decoded, before inference:

* ``blank``: near-uniform grey levels (a frozen-black or white screen, a probe in air);
* ``frozen``: identical to the previous frame of a live source (a stalled capture card
  repeats its last frame; a file may legitimately hold duplicates, so files are exempt);
* ``colour``: colour inside the region of interest (colour flow or power Doppler
  overlays, elastography, a photograph). B-mode ultrasound is grey; compression leaves
  only faint chroma, so a pixel counts as colour only well above that noise.

After inference the engine's own out-of-distribution score (the Mahalanobis distance of
the model's features to its training features, computed inside the exported graph) can
reject a frame as ``out_of_distribution``: that check is in postprocess.summarise.
numpy and OpenCV only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from .postprocess import OUT_OF_DISTRIBUTION, Roi

BLANK, FROZEN, COLOUR = "blank", "frozen", "colour"
REASONS = {
    BLANK: "blank or near-uniform image",
    FROZEN: "frozen: the same frame again from a live source",
    COLOUR: "colour in the region of interest (Doppler, elastography or not ultrasound)",
    OUT_OF_DISTRIBUTION: "unlike the images the model was trained on",
}


@dataclass
class QualityGate:
    """Decides, per frame, whether the model may speak about it. One gate per stream (it remembers the last frame)."""

    live: bool = False
    #: Grey-level standard deviation below which the region is taken as blank (ultrasound speckle gives 20-60).
    min_grey_std: float = 3.0
    #: HSV saturation (0-255) above which a pixel counts as coloured; video compression of grey stays far below.
    colour_saturation: int = 80
    #: Share of coloured pixels in the region of interest that makes the frame a colour frame.
    max_colour_share: float = 0.005
    _previous: np.ndarray | None = field(default=None, repr=False)

    def check(self, image: np.ndarray, roi: Roi) -> str | None:
        """The reason (a key of :data:`REASONS`) this frame gets no verdict, or None if it may have one."""
        x, y, w, h = roi
        region = image[y:y + h, x:x + w]
        grey = region if region.ndim == 2 else cv2.cvtColor(region, cv2.COLOR_BGR2GRAY)
        frozen = self.live and self._previous is not None and self._previous.shape == grey.shape \
            and np.array_equal(self._previous, grey)
        self._previous = grey.copy() if self.live else None
        # OpenCV's one-pass meanStdDev: numpy's std takes 0.26 ms on a 640x480 frame, a tenth of the
        # pipeline's whole budget beside the engine on two cores (docs/deployment.md); this takes 0.01.
        if float(cv2.meanStdDev(grey)[1][0, 0]) < self.min_grey_std:
            return BLANK
        if frozen:
            return FROZEN
        if region.ndim == 3 and colour_share(colour_sample(region), self.colour_saturation) > self.max_colour_share:
            return COLOUR
        return None


#: The colour check looks at every k-th pixel of each row and column, k chosen to leave about this many on the
#: shorter side. A colour-flow box worth rejecting (0.5% of the region or more) is a blob tens of pixels across,
#: which a sample every few pixels measures as well as the whole frame; the HSV conversion of a full 640x480
#: frame took 0.7 ms, as much as the rest of a frame's preparation, where this takes 0.06.
COLOUR_SAMPLE_SIDE = 120


def colour_sample(region_bgr: np.ndarray) -> np.ndarray:
    """Every k-th pixel of the region (nearest-neighbour), k such that about COLOUR_SAMPLE_SIDE remain across."""
    height, width = region_bgr.shape[:2]
    step = max(1, min(height, width) // COLOUR_SAMPLE_SIDE)
    if step == 1:
        return region_bgr
    return cv2.resize(region_bgr, (max(1, width // step), max(1, height // step)), interpolation=cv2.INTER_NEAREST)


def colour_share(region_bgr: np.ndarray, saturation_threshold: int) -> float:
    """The share of pixels whose HSV saturation is above the threshold (bright enough to have a hue at all)."""
    hsv = cv2.cvtColor(np.ascontiguousarray(region_bgr[..., :3]), cv2.COLOR_BGR2HSV)
    coloured = (hsv[..., 1] > saturation_threshold) & (hsv[..., 2] > 40)
    return float(np.count_nonzero(coloured)) / float(coloured.size) if coloured.size else 0.0
