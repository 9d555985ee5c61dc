"""Data: readers for BUSI, Dataset B (UDIAT) and plain folders, the phantom generator,
preprocessing, augmentation and splits. numpy and OpenCV only (no torch)."""

from .preprocess import DEFAULT_NORMALISATION, Normalisation, normalise, preprocess, resize_grey, resize_mask
from .sample import Sample, class_counts
from .sources import DATA_SPEC_HELP, load_dataset

__all__ = [
    "DATA_SPEC_HELP", "DEFAULT_NORMALISATION", "Normalisation", "Sample", "class_counts", "load_dataset",
    "normalise", "preprocess", "resize_grey", "resize_mask",
]
