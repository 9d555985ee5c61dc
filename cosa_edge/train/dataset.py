"""The torch view of a list of samples: resized once, augmented per (seed, epoch, index)."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from ..data import DEFAULT_NORMALISATION, Normalisation, Sample, normalise, resize_grey, resize_mask
from ..data.augment import augment


class SegClsDataset(Dataset):
    def __init__(self, samples: list[Sample], image_size: int, augment: bool = False, seed: int = 0,
                 norm: Normalisation = DEFAULT_NORMALISATION) -> None:
        self.images = np.stack([resize_grey(s.image, image_size) for s in samples])
        self.masks = np.stack([resize_mask(s.mask, image_size) for s in samples])
        self.labels = np.array([s.label for s in samples], dtype=np.int64)
        self.augment, self.seed, self.norm = augment, seed, norm
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Augmentations depend on the epoch, not on how many times the loader ran: resume is exact."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        image, mask = self.images[index], self.masks[index]
        if self.augment:
            image, mask = augment(image, mask, np.random.default_rng([self.seed, self.epoch, index]))
        return (torch.from_numpy(normalise(image, self.norm)),
                torch.from_numpy(mask.astype(np.int64)),
                torch.tensor(self.labels[index]))
