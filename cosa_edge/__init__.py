"""cosa-edge: MTL-COSA breast-ultrasound segmentation and classification, from training to engines."""

__version__ = "0.1.0"

#: Class indices used everywhere (datasets, models, metrics, reports).
CLASS_NAMES: tuple[str, ...] = ("benign", "malignant")
BENIGN, MALIGNANT = 0, 1
#: The label of a lesion-free image (BUSI's "normal"): it trains segmentation only and has no class.
NO_LESION = -1
NO_LESION_NAME = "normal"
