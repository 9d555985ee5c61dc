"""Reading images and masks from disk into the shapes the rest of the package expects."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ..errors import CosaEdgeError, first_line


def to_grey_uint8(image: np.ndarray, what: str = "image") -> np.ndarray:
    """Any decoded image (grey, BGR, BGRA; 8 or 16 bit) as uint8 (H, W) grey."""
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 3:
        if image.shape[2] == 4:
            image = cv2.cvtColor(image, cv2.COLOR_BGRA2GRAY)
        elif image.shape[2] == 3:
            image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        else:
            raise CosaEdgeError(f"{what} has {image.shape[2]} channels; expected grey, colour or colour with alpha")
    if image.ndim != 2:
        raise CosaEdgeError(f"{what} has shape {image.shape}; expected a 2-D picture")
    if image.dtype == np.uint16:
        image = (image // 257).astype(np.uint8)
    elif image.dtype != np.uint8:
        if not np.issubdtype(image.dtype, np.number):
            raise CosaEdgeError(f"{what} has pixel type {image.dtype}; expected 8- or 16-bit integers")
        lo, hi = float(np.min(image)), float(np.max(image))
        scale = 255.0 / (hi - lo) if hi > lo else 0.0
        image = ((image.astype(np.float64) - lo) * scale).round().astype(np.uint8)
    return np.ascontiguousarray(image)


def _decode(path: Path) -> np.ndarray:
    if not path.is_file():
        raise CosaEdgeError(f"image {path} does not exist")
    # imdecode over imread: imread silently returns None and mangles non-ASCII paths on some platforms.
    data = np.fromfile(str(path), dtype=np.uint8)
    try:
        image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    except cv2.error as exc:
        # OpenCV asserts, rather than returning None, on a header whose width, height or pixel count passes its
        # limits (CV_IO_MAX_IMAGE_WIDTH/HEIGHT/PIXELS): a damaged header, found by fuzzing (docs/fuzzing.md).
        if "CV_IO_MAX_IMAGE" in str(exc):
            raise CosaEdgeError(f"cannot decode image {path}: its header states a size larger than OpenCV reads "
                                "(the file is damaged or not an image); replace or remove it") from None
        raise CosaEdgeError(f"cannot decode image {path}: OpenCV refused it ({first_line(exc)}); replace or "
                            "remove it") from None
    if image is None:
        raise CosaEdgeError(f"cannot decode image {path}: the file is empty, truncated or not an image; replace or "
                            "remove it")
    return image


def read_grey(path: Path) -> np.ndarray:
    """Read an image file as uint8 grey; a missing or undecodable file is a :class:`CosaEdgeError`.

    A DICOM file (recognised by content, whatever its suffix) is read through pydicom (its first frame), never
    through OpenCV, which does not read DICOM."""
    from .dicom import is_dicom, read_dicom_grey

    if is_dicom(Path(path)):
        return read_dicom_grey(Path(path))
    return to_grey_uint8(_decode(path), what=str(path))


def read_frame(path: Path) -> np.ndarray:
    """Read an image file as a frame to stream: uint8 BGR where it has colour (the quality gate looks for colour,
    e.g. Doppler), else uint8 grey."""
    image = _decode(path)
    if image.ndim == 3 and image.shape[2] in (3, 4) and image.dtype == np.uint8:
        return np.ascontiguousarray(image[:, :, :3])
    return to_grey_uint8(image, what=str(path))


def read_mask(path: Path, expected_shape: tuple[int, int] | None = None) -> np.ndarray:
    """Read a lesion mask as bool (any non-zero pixel is lesion) and check its size."""
    mask = read_grey(path) > 0
    if expected_shape is not None and mask.shape != expected_shape:
        raise CosaEdgeError(
            f"mask {path} is {mask.shape[1]}x{mask.shape[0]} but its image is {expected_shape[1]}x{expected_shape[0]}; "
            "masks must have their image's size"
        )
    return mask


def union_of_masks(paths: list[Path], expected_shape: tuple[int, int]) -> np.ndarray:
    """The union of several lesion masks, as bool (a uint8 sum would overflow at 255 + 255)."""
    union = np.zeros(expected_shape, dtype=bool)
    for path in paths:
        union |= read_mask(path, expected_shape)
    return union
