"""A plain folder of images, masks and labels, for data that comes in no published layout.

    images/NAME.png (or .jpg, .bmp, .tif, or .dcm: a DICOM image, read through pydicom)
    masks/NAME.png              same stem as the image
    labels.csv                  columns image,label with label benign or malignant (or 0/1)
"""

from __future__ import annotations

import csv
from pathlib import Path

from .. import CLASS_NAMES
from ..errors import CosaEdgeError
from ..progress import progress_bar
from .imageio import read_grey, read_mask
from .sample import Sample

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
#: Training images may also be DICOM (the first frame of a file is the image); masks are plain images.
TRAINING_IMAGE_SUFFIXES = (*IMAGE_SUFFIXES, ".dcm")


def _parse_label(value: str, where: str) -> int:
    value = value.strip().lower()
    if value in CLASS_NAMES:
        return CLASS_NAMES.index(value)
    if value in ("0", "1"):
        return int(value)
    raise CosaEdgeError(f"{where}: label {value!r} is not benign, malignant, 0 or 1")


def load_folder(path: Path, progress: bool = True) -> list[Sample]:
    root = Path(path)
    labels_path = root / "labels.csv"
    if not (root / "images").is_dir() or not (root / "masks").is_dir() or not labels_path.is_file():
        raise CosaEdgeError(f"{root} is not an images/ + masks/ + labels.csv folder (see cosa_edge/data/folder.py for "
                            "the layout)")
    try:
        with labels_path.open(newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.DictReader(handle))
    except UnicodeDecodeError as exc:  # found by fuzzing: a traceback before (docs/fuzzing.md)
        raise CosaEdgeError(f"{labels_path} is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at position "
                            f"{exc.start}); save it as a UTF-8 CSV file") from None
    except csv.Error as exc:  # a field past the csv module's limit, a broken quote: not a CSV file
        raise CosaEdgeError(f"{labels_path} is not a readable CSV file ({exc}); save it as a UTF-8 CSV file with "
                            "the columns image and label") from None
    if not rows or "image" not in rows[0] or "label" not in rows[0]:
        raise CosaEdgeError(f"{labels_path} needs the columns image and label and at least one row")

    samples = []
    for number, row in enumerate(progress_bar(rows, desc="reading folder", unit="img", disable=not progress,
                                              leave=False), start=2):
        if not row.get("image") or row.get("label") is None:  # a line cut short: csv fills what is missing with None
            raise CosaEdgeError(f"{labels_path}, line {number}: no image name or no label (the line is cut short); "
                                "give every row an image and a label")
        stem = Path(row["image"]).stem
        image_path = next((root / "images" / (stem + s) for s in TRAINING_IMAGE_SUFFIXES
                           if (root / "images" / (stem + s)).is_file()), None)
        if image_path is None:
            raise CosaEdgeError(f"{labels_path} lists {row['image']} but images/ has no such image")
        mask_path = next((root / "masks" / (stem + s) for s in IMAGE_SUFFIXES
                          if (root / "masks" / (stem + s)).is_file()), None)
        if mask_path is None:
            raise CosaEdgeError(f"image {image_path} has no mask in masks/ (expected masks/{stem}.png)")
        image = read_grey(image_path)
        samples.append(Sample(name=stem, image=image, mask=read_mask(mask_path, image.shape),
                              label=_parse_label(row["label"], f"{labels_path}, row {stem}"), source="folder"))
    return samples


def write_folder(samples: list[Sample], path: Path) -> None:
    """Write samples in this layout (used to save phantom data sets to disk)."""
    import cv2

    root = Path(path)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    lines = ["image,label"]
    for sample in samples:
        stem = sample.name.replace("/", "_")
        cv2.imwrite(str(root / "images" / f"{stem}.png"), sample.image)
        cv2.imwrite(str(root / "masks" / f"{stem}.png"), sample.mask.astype("uint8") * 255)
        lines.append(f"{stem}.png,{sample.class_name}")
    from ..fileio import atomic_write_text

    atomic_write_text(root / "labels.csv", "\n".join(lines) + "\n")
