"""BUSI (Al-Dhabyani et al. 2020) in its published layout.

    Dataset_BUSI_with_GT/
      benign/     benign (N).png, benign (N)_mask.png[, benign (N)_mask_1.png, ...]
      malignant/  malignant (N).png, malignant (N)_mask.png, ...
      normal/     normal (N).png, normal (N)_mask.png (empty): no lesion

An image with several masks has one lesion: the union of them. The normal images are
left out by default, as in the MTL-COSA paper; ``include_normal=True`` reads them as
lesion-free samples (label NO_LESION), which train the segmentation to answer "no lesion".
"""

from __future__ import annotations

import re
from pathlib import Path

from .. import CLASS_NAMES, NO_LESION, NO_LESION_NAME
from ..errors import CosaEdgeError
from ..progress import progress_bar
from .imageio import read_grey, union_of_masks
from .sample import Sample

_MASK_SUFFIX = re.compile(r"_mask(_\d+)?$")


def find_busi_root(path: Path) -> Path:
    """Accept the dataset folder itself or a folder that holds ``Dataset_BUSI_with_GT``."""
    if not path.exists():
        raise CosaEdgeError(f"BUSI folder {path} does not exist; pass the folder that holds benign/ and malignant/")
    for candidate in (path, path / "Dataset_BUSI_with_GT"):
        if all((candidate / name).is_dir() for name in CLASS_NAMES):
            return candidate
    raise CosaEdgeError(
        f"{path} is not in BUSI's layout: expected the sub-folders benign/ and malignant/ "
        "(or Dataset_BUSI_with_GT/ holding them)"
    )


def _natural_key(path: Path) -> tuple[str, int]:
    match = re.search(r"\((\d+)\)", path.stem)
    return (path.stem.split("(")[0], int(match.group(1)) if match else -1)


def load_busi(path: Path, progress: bool = True, include_normal: bool = False) -> list[Sample]:
    """Read every benign and malignant image of BUSI with the union of its masks (and the normal ones if asked)."""
    root = find_busi_root(Path(path))
    image_paths: list[tuple[Path, int]] = []
    folders = [(label, name) for label, name in enumerate(CLASS_NAMES)]
    if include_normal:
        if not (root / NO_LESION_NAME).is_dir():
            raise CosaEdgeError(f"--include-normal: BUSI folder {root} has no {NO_LESION_NAME}/ sub-folder")
        folders.append((NO_LESION, NO_LESION_NAME))
    for label, class_name in folders:
        folder = root / class_name
        images = sorted((p for p in folder.glob("*.png") if not _MASK_SUFFIX.search(p.stem)), key=_natural_key)
        image_paths.extend((p, label) for p in images)
    if not image_paths:
        raise CosaEdgeError(f"BUSI folder {root} has no images in benign/ or malignant/")

    samples = []
    for image_path, label in progress_bar(image_paths, desc="reading BUSI", unit="img", disable=not progress,
                                          leave=False):
        image = read_grey(image_path)
        mask_paths = sorted(image_path.parent.glob(f"{glob_escape(image_path.stem)}_mask*.png"))
        mask_paths = [p for p in mask_paths
                      if _MASK_SUFFIX.search(p.stem) and p.stem.startswith(image_path.stem + "_mask")]
        if not mask_paths:
            raise CosaEdgeError(f"image {image_path} has no mask ({image_path.stem}_mask.png); add it or remove the "
                                "image")
        mask = union_of_masks(mask_paths, image.shape)
        if label == NO_LESION and mask.any():
            raise CosaEdgeError(f"{image_path} is in BUSI's normal/ folder but its mask marks a lesion; "
                                "move it to benign/ or malignant/, or clear the mask")
        folder_name = image_path.parent.name
        samples.append(Sample(name=f"{folder_name}/{image_path.stem}", image=image, mask=mask, label=label,
                              source="busi", extra={"path": str(image_path), "masks": str(len(mask_paths))}))
    return samples


def glob_escape(text: str) -> str:
    """Escape glob's special characters (BUSI names contain parentheses and spaces, brackets may follow)."""
    return re.sub(r"([\[\]*?])", r"[\1]", text)
