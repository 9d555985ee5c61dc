"""Decoded DICOM pixel values to the uint8 grey or BGR images the rest of cosa-edge consumes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import CosaEdgeError
from .dicom_header import pixels_module, tag_integer, tag_number

@dataclass(frozen=True)
class PixelFormat:
    """How stored values become display values (read once from the header, used for every frame)."""

    photometric: str
    bits_stored: int
    signed: bool
    window: tuple[float, float] | None  # (centre, width) of the first VOI window, if any
    rescale: tuple[float, float]  # (slope, intercept) of the modality LUT


def pixel_format(dataset: Any) -> PixelFormat:
    centre, width = tag_number(dataset, "WindowCenter"), tag_number(dataset, "WindowWidth")
    window = (centre, width) if centre is not None and width is not None and width > 1 else None
    return PixelFormat(
        photometric=str(dataset.get("PhotometricInterpretation", "") or "").strip().upper(),
        bits_stored=tag_integer(dataset, "BitsStored") or tag_integer(dataset, "BitsAllocated") or 8,
        signed=tag_integer(dataset, "PixelRepresentation") == 1,
        window=window,
        rescale=(tag_number(dataset, "RescaleSlope") or 1.0, tag_number(dataset, "RescaleIntercept") or 0.0),
    )


def _by_bit_depth(values: np.ndarray, bits: int, signed: bool) -> np.ndarray:
    """Stored values over their full range (from the bit depth, not the frame's min/max) onto 0..255."""
    if values.dtype == np.uint8 and not signed and bits >= 8:
        return values
    bits = max(1, min(bits, 8 * values.dtype.itemsize))
    low = -(2.0 ** (bits - 1)) if signed else 0.0
    scaled = (values.astype(np.float32) - low) * (255.0 / (2.0 ** bits - 1.0))
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def _by_window(values: np.ndarray, fmt: PixelFormat) -> np.ndarray:
    """The linear VOI window of PS3.3 C.11.2.1.2.1, after the modality rescale."""
    centre, width = fmt.window  # type: ignore[misc]
    slope, intercept = fmt.rescale
    modality = values.astype(np.float32) * slope + intercept
    scaled = ((modality - (centre - 0.5)) / (width - 1.0) + 0.5) * 255.0
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def _grey(values: np.ndarray, fmt: PixelFormat) -> np.ndarray:
    """MONOCHROME1/2 as uint8 where higher is brighter."""
    if values.dtype == np.uint8 and not fmt.signed:
        # 8-bit ultrasound is already display values; a window there is display advice, and applying it
        # would change what the model sees compared with the same scanner's video output.
        grey = values
    elif fmt.window is not None:
        grey = _by_window(values, fmt)
    else:
        grey = _by_bit_depth(values, fmt.bits_stored, fmt.signed)
    if fmt.photometric == "MONOCHROME1":
        grey = 255 - grey  # MONOCHROME1 shows its lowest value as white
    return np.ascontiguousarray(grey)


def _palette(values: np.ndarray, dataset: Any, name: str) -> np.ndarray:
    """PALETTE COLOR through its lookup table, as uint8 RGB."""
    pixels = pixels_module()
    try:
        rgb = pixels.apply_color_lut(values, dataset)
    except Exception as exc:  # a missing or malformed table is the file's fault, not ours
        raise CosaEdgeError(f"{name} is PALETTE COLOR but its colour lookup table cannot be used ({exc}); "
                            "export it from the scanner or PACS as RGB") from None
    if rgb.dtype != np.uint8:
        rgb = (rgb.astype(np.uint32) >> 8).astype(np.uint8)  # 16-bit table entries: keep the high byte
    return rgb


def to_image(values: np.ndarray, fmt: PixelFormat, dataset: Any, name: str) -> np.ndarray:
    """A decoded frame as uint8 grey (H, W) or BGR (H, W, 3)."""
    if values.ndim == 2 and fmt.photometric == "PALETTE COLOR":
        rgb = _palette(values, dataset, name)
    elif values.ndim == 2:
        return _grey(values, fmt)
    else:
        # pydicom has already turned YBR_FULL / YBR_FULL_422 / YBR_RCT / YBR_ICT into RGB.
        rgb = _by_bit_depth(values, fmt.bits_stored, fmt.signed) if values.dtype != np.uint8 else values
    return np.ascontiguousarray(rgb[..., 2::-1])  # RGB -> BGR: every other image in cosa-edge is OpenCV's
