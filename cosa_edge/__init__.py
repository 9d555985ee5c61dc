"""cosa-edge: MTL-COSA breast-ultrasound segmentation and classification, from training to engines."""

__version__ = "0.1.0"

#: Class indices used everywhere (datasets, models, metrics, reports).
CLASS_NAMES: tuple[str, ...] = ("benign", "malignant")
BENIGN, MALIGNANT = 0, 1
