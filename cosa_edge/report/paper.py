"""The numbers Xu, Huang and Qi published (ISBI 2022, Tables 1 and 2, Fig. 3), in percent."""

from __future__ import annotations

# Table 1: segmentation. Keys: data set -> architecture -> metric.
TABLE1: dict[str, dict[str, dict[str, float]]] = {
    "udiat": {
        "uresnet": {"TPR": 84.39, "FPR": 34.03, "mIoU": 86.11, "DSC": 82.25, "AER": 49.64},
        "mtl": {"TPR": 82.18, "FPR": 23.03, "mIoU": 85.00, "DSC": 79.92, "AER": 40.85},
        "mtl_sa": {"TPR": 78.54, "FPR": 15.50, "mIoU": 84.44, "DSC": 78.90, "AER": 36.96},
        "mtl_cosa": {"TPR": 82.17, "FPR": 17.14, "mIoU": 85.87, "DSC": 81.82, "AER": 34.97},
    },
    "busi": {
        "uresnet": {"TPR": 77.09, "FPR": 33.34, "mIoU": 82.27, "DSC": 77.63, "AER": 56.25},
        "mtl": {"TPR": 77.52, "FPR": 39.11, "mIoU": 81.48, "DSC": 76.38, "AER": 61.59},
        "mtl_sa": {"TPR": 75.28, "FPR": 37.05, "mIoU": 81.09, "DSC": 75.61, "AER": 61.77},
        "mtl_cosa": {"TPR": 77.85, "FPR": 37.01, "mIoU": 82.13, "DSC": 77.48, "AER": 59.15},
    },
}

# Table 2: classification with BENIGN as the positive class.
TABLE2: dict[str, dict[str, dict[str, float]]] = {
    "udiat": {
        "vgg16": {"TPR": 85.33, "FPR": 33.27, "ACC": 79.16, "PRE": 84.10, "F1": 84.60},
        "lenet": {"TPR": 92.73, "FPR": 51.82, "ACC": 77.99, "PRE": 78.26, "F1": 84.74},
        "resnet": {"TPR": 90.91, "FPR": 29.82, "ACC": 84.09, "PRE": 86.23, "F1": 88.38},
        "mtl": {"TPR": 92.73, "FPR": 31.64, "ACC": 84.69, "PRE": 86.09, "F1": 88.88},
        "mtl_sa": {"TPR": 90.82, "FPR": 25.64, "ACC": 85.34, "PRE": 88.24, "F1": 89.22},
        "mtl_cosa": {"TPR": 91.73, "FPR": 22.36, "ACC": 87.08, "PRE": 89.36, "F1": 90.41},
    },
    "busi": {
        "vgg16": {"TPR": 89.22, "FPR": 20.95, "ACC": 85.92, "PRE": 89.83, "F1": 89.51},
        "lenet": {"TPR": 90.84, "FPR": 43.33, "ACC": 79.74, "PRE": 81.44, "F1": 85.81},
        "resnet": {"TPR": 93.56, "FPR": 17.14, "ACC": 90.10, "PRE": 91.90, "F1": 92.68},
        "mtl": {"TPR": 93.57, "FPR": 14.76, "ACC": 90.86, "PRE": 92.98, "F1": 93.22},
        "mtl_sa": {"TPR": 94.27, "FPR": 16.19, "ACC": 90.87, "PRE": 92.39, "F1": 93.30},
        "mtl_cosa": {"TPR": 92.20, "FPR": 10.00, "ACC": 91.48, "PRE": 95.05, "F1": 93.59},
    },
}

# Fig. 3: the AUCs the text quotes (the others are only drawn).
AUC: dict[str, dict[str, float]] = {
    "udiat": {"resnet": 0.89, "mtl_cosa": 0.93},
    "busi": {"resnet": 0.96, "mtl_cosa": 0.97},
}


def dataset_key(data_spec: str) -> str | None:
    """'busi:/x' -> 'busi'; data sets the paper did not use have no published numbers."""
    kind = data_spec.split(":", 1)[0].lower()
    return kind if kind in TABLE1 else None
