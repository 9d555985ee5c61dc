"""The unit every reader returns: one grey image, its lesion mask and its class."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .. import CLASS_NAMES, NO_LESION, NO_LESION_NAME


@dataclass(frozen=True)
class Sample:
    """One ultrasound image at its original resolution.

    ``image`` is uint8 (H, W) grey; ``mask`` is bool (H, W), True on the lesion;
    ``label`` indexes :data:`cosa_edge.CLASS_NAMES` (0 benign, 1 malignant), or is
    :data:`cosa_edge.NO_LESION` for a lesion-free image (empty mask, no class).
    """

    name: str
    image: np.ndarray
    mask: np.ndarray
    label: int
    source: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.image.ndim != 2 or self.image.dtype != np.uint8:
            raise ValueError(f"{self.name}: image must be uint8 (H, W), got {self.image.dtype} {self.image.shape}")
        if self.mask.shape != self.image.shape or self.mask.dtype != np.bool_:
            raise ValueError(f"{self.name}: mask must be bool with the image's shape {self.image.shape}")
        if self.label != NO_LESION and self.label not in range(len(CLASS_NAMES)):
            raise ValueError(f"{self.name}: label {self.label} is not one of {CLASS_NAMES} or NO_LESION")
        if self.label == NO_LESION and self.mask.any():
            raise ValueError(f"{self.name}: a lesion-free image must have an empty mask")

    @property
    def has_lesion(self) -> bool:
        return self.label != NO_LESION

    @property
    def class_name(self) -> str:
        return CLASS_NAMES[self.label] if self.has_lesion else NO_LESION_NAME

    @property
    def stratum(self) -> int:
        """The group splits balance: the class, and lesion-free images as a group of their own."""
        return self.label if self.has_lesion else len(CLASS_NAMES)


def class_counts(samples: list[Sample]) -> dict[str, int]:
    """How many samples of each class, in :data:`CLASS_NAMES` order, and lesion-free ones where there are any."""
    counts = {name: 0 for name in CLASS_NAMES}
    for sample in samples:
        counts[sample.class_name] = counts.get(sample.class_name, 0) + 1
    return counts
