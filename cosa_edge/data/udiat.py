"""Dataset B / UDIAT (Yap et al. 2017) in its published layout.

    original/000001.png ...   the images
    GT/000001.png ...         the lesion masks
    DatasetB.xlsx             columns Image, Type (Benign/Malignant), histology
                              (a CSV with the same columns is accepted instead)
"""

from __future__ import annotations

import csv
from pathlib import Path

from .._optional import require
from ..errors import CosaEdgeError
from ..progress import progress_bar
from .imageio import read_grey, read_mask
from .sample import Sample

_TYPE_TO_LABEL = {"benign": 0, "malignant": 1}


def _read_label_rows(path: Path) -> list[dict[str, str]]:
    if path.suffix.lower() == ".csv":
        with path.open(newline="", encoding="utf-8-sig") as handle:
            return [{k.strip(): (v or "").strip() for k, v in row.items() if k} for row in csv.DictReader(handle)]
    openpyxl = require("openpyxl")
    try:
        sheet = openpyxl.load_workbook(path, read_only=True, data_only=True).active
    except Exception as exc:  # openpyxl raises several unrelated types for a bad file
        raise CosaEdgeError(f"cannot read label sheet {path}: {exc}") from None
    rows = [[("" if c is None else str(c)).strip() for c in row] for row in sheet.iter_rows(values_only=True)]
    if not rows:
        return []
    header = rows[0]
    return [dict(zip(header, row)) for row in rows[1:] if any(row)]


def _image_stem(value: str) -> str:
    """'1', '1.0', '000001' and '000001.png' all name original/000001.png."""
    value = Path(value).stem
    try:
        return f"{int(float(value)):06d}"
    except ValueError:
        return value


def load_udiat(path: Path, progress: bool = True) -> list[Sample]:
    root = Path(path)
    if not (root / "original").is_dir() or not (root / "GT").is_dir():
        raise CosaEdgeError(f"{root} is not in Dataset B's layout: expected original/, GT/ and DatasetB.xlsx (or "
                            "DatasetB.csv)")
    sheets = [root / name for name in ("DatasetB.xlsx", "DatasetB.csv") if (root / name).is_file()]
    if not sheets:
        raise CosaEdgeError(f"{root} has no label sheet: expected DatasetB.xlsx or DatasetB.csv with columns Image and "
                            "Type")
    rows = _read_label_rows(sheets[0])
    if not rows or "Image" not in rows[0] or "Type" not in rows[0]:
        raise CosaEdgeError(f"label sheet {sheets[0]} needs the columns Image and Type (Benign/Malignant)")

    samples = []
    for row in progress_bar(rows, desc="reading Dataset B", unit="img", disable=not progress, leave=False):
        label = _TYPE_TO_LABEL.get(row["Type"].lower())
        if label is None:
            raise CosaEdgeError(f"{sheets[0]}: image {row['Image']} has Type {row['Type']!r}; expected Benign or "
                                "Malignant")
        stem = _image_stem(row["Image"])
        image = read_grey(root / "original" / f"{stem}.png")
        mask_path = root / "GT" / f"{stem}.png"
        if not mask_path.is_file():
            raise CosaEdgeError(f"image {root / 'original' / (stem + '.png')} has no mask {mask_path}")
        mask = read_mask(mask_path, image.shape)
        samples.append(Sample(name=stem, image=image, mask=mask, label=label, source="udiat",
                              extra={"histology": row.get("histology", row.get("Histology", ""))}))
    if not samples:
        raise CosaEdgeError(f"label sheet {sheets[0]} lists no images")
    return samples
