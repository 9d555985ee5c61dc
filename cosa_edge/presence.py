"""Is there a lesion at all? The rule every output follows before it names a class.

A frame holds a lesion only where the predicted mask (lesion probability > 0.5) covers
at least ``min_lesion_share`` of the region of interest. Below it the answer is "no
lesion" and no benign/malignant verdict is given: the classifier was trained on
lesions only, so its output on healthy tissue means nothing.

The threshold is chosen on validation data that holds lesion-free images: the largest
share that still keeps at least :data:`TARGET_SENSITIVITY` of the validation lesions
(missing a lesion costs more than a false "lesion"), and the share of lesion-free
images it lets through is reported beside it. Without lesion-free validation images
nothing can be chosen, and :data:`DEFAULT_MIN_LESION_SHARE` stands, said as such.
numpy only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

#: Without lesion-free validation data: ignore specks under 0.2% of the region of interest.
DEFAULT_MIN_LESION_SHARE = 0.002
#: The share of validation lesions the chosen threshold keeps.
TARGET_SENSITIVITY = 0.95


def lesion_share(mask: np.ndarray) -> float:
    """The share of the image (the region of interest) that the bool mask covers."""
    return float(np.count_nonzero(mask)) / float(mask.size) if mask.size else 0.0


def lesion_present(share: float, min_lesion_share: float) -> bool:
    return share > 0.0 and share >= min_lesion_share


def presence_metrics(shares: Sequence[float], has_lesion: Sequence[bool], min_lesion_share: float) -> dict[str, Any]:
    """Lesion presence per image: sensitivity over lesion images, specificity over lesion-free ones."""
    shares_array, truth = np.asarray(shares, float), np.asarray(has_lesion, bool)
    present = (shares_array > 0) & (shares_array >= min_lesion_share)
    lesions, normals = int(truth.sum()), int((~truth).sum())
    return {
        "min_lesion_share": float(min_lesion_share),
        "lesion_images": lesions, "lesion_free_images": normals,
        "sensitivity": float(present[truth].mean()) if lesions else None,  # lesion images that keep their lesion
        "specificity": float((~present[~truth]).mean()) if normals else None,  # lesion-free images called so
    }


def choose_min_lesion_share(shares: Sequence[float], has_lesion: Sequence[bool],
                            target_sensitivity: float = TARGET_SENSITIVITY) -> dict[str, Any]:
    """The presence threshold and how it was chosen: {"min_lesion_share", "chosen_on", and the validation figures}."""
    shares_array, truth = np.asarray(shares, float), np.asarray(has_lesion, bool)
    lesion_shares = np.sort(shares_array[truth])
    if not truth.any() or truth.all():
        what = "no lesion-free" if truth.all() else "no lesion"
        chosen = {"min_lesion_share": DEFAULT_MIN_LESION_SHARE,
                  "chosen_on": f"default: the validation data held {what} images, so nothing could be chosen"}
        return {**chosen, "validation": presence_metrics(shares_array, truth, DEFAULT_MIN_LESION_SHARE)}
    # Keep at least ceil(target * n) lesions: the threshold may rise up to the share of the
    # (n - kept)-th smallest lesion; a lesion predicted with no pixels at all is lost whatever we choose.
    allowed_misses = len(lesion_shares) - int(np.ceil(target_sensitivity * len(lesion_shares)))
    threshold = float(lesion_shares[allowed_misses])
    if not (shares_array > 0).any():
        chosen = {"min_lesion_share": DEFAULT_MIN_LESION_SHARE,
                  "chosen_on": "default: the model marked no lesion pixel in any validation image"}
        return {**chosen, "validation": presence_metrics(shares_array, truth, DEFAULT_MIN_LESION_SHARE)}
    threshold = max(threshold, float(shares_array[shares_array > 0].min()))
    validation = presence_metrics(shares_array, truth, threshold)
    return {"min_lesion_share": threshold,
            "chosen_on": (f"validation: {validation['lesion_images']} lesion and {validation['lesion_free_images']} "
                          f"lesion-free images, the largest share keeping >= {target_sensitivity:.0%} of the lesions"),
            "validation": validation}
