"""The Sequence of Ultrasound Regions (0018,6011): where the 2D tissue image lies in a frame, and its spacing.

Inference runs on the 2D tissue image alone, not on the spectral Doppler strip, the ECG trace or the colour bar
beside it; measurements are given in millimetres from the region's physical spacing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import CosaEdgeError
from .dicom_header import tag_integer, tag_number, tag_numbers, tag_values

#: Region Spatial Format (0018,6012) and Region Data Type (0018,6014) values (PS3.3 C.8.5.5.1.1/2).
SPATIAL_2D, DATA_TISSUE = 1, 1
_SPATIAL_NAMES = {0: "none", 1: "2D", 2: "M-mode", 3: "spectral", 4: "waveform", 5: "graphics"}
_DATA_NAMES = {
    0: "none", 1: "tissue", 2: "colour flow", 3: "PW spectral Doppler", 4: "CW spectral Doppler",
    5: "Doppler mean trace", 6: "Doppler mode trace", 7: "Doppler max trace", 8: "volume trace",
    10: "ECG trace", 11: "pulse trace", 12: "phonocardiogram trace", 13: "grey bar", 14: "colour bar",
}
#: Physical Units X/Y Direction (0018,6024/6026) value for centimetres.
_UNITS_CM = 3


@dataclass(frozen=True)
class UltrasoundRegion:
    """One item of the Sequence of Ultrasound Regions (0018,6011), clamped to the pixel matrix."""

    index: int  # position in the sequence, 0-based
    x: int
    y: int
    w: int
    h: int
    spatial_format: int  # 1 = 2D, 2 = M-mode, 3 = spectral, 4 = waveform, 5 = graphics
    data_type: int  # 1 = tissue, 2 = colour flow, 3 = PW spectral Doppler, 4 = CW spectral Doppler, ...
    spacing_mm: tuple[float, float] | None  # (dy, dx) in mm, where the physical units are centimetres
    clamped: bool  # the stated region reached past the pixel matrix

    @property
    def roi(self) -> tuple[int, int, int, int]:
        """(x, y, w, h) in pixels."""
        return (self.x, self.y, self.w, self.h)

    @property
    def is_tissue_2d(self) -> bool:
        """A B-mode tissue image: the only kind of region the model has been trained on."""
        return self.spatial_format == SPATIAL_2D and self.data_type == DATA_TISSUE


def _region_spacing(item: Any) -> tuple[float, float] | None:
    """(dy, dx) in mm from Physical Delta Y/X, only where both directions are in centimetres."""
    units = (tag_integer(item, "PhysicalUnitsXDirection"), tag_integer(item, "PhysicalUnitsYDirection"))
    if units != (_UNITS_CM, _UNITS_CM):
        return None  # seconds, cm/s, dB...: not a distance, so no spacing in mm
    dx, dy = tag_number(item, "PhysicalDeltaX"), tag_number(item, "PhysicalDeltaY")
    if dx is None or dy is None or not (np.isfinite(dx) and np.isfinite(dy)) or dx == 0 or dy == 0:
        return None
    spacing = (abs(dy) * 10.0, abs(dx) * 10.0)  # a negative delta states a direction, not a smaller pixel
    return spacing if plausible_spacing(spacing) else None


#: Millimetres per pixel that an image can have: a spacing outside this range is a damaged value (the fuzzer
#: found 5e-324 cm, which made a lesion's chord infinitely many steps long), not a calibration.
PLAUSIBLE_SPACING_MM = (1e-4, 10.0)


def plausible_spacing(spacing: tuple[float, float]) -> bool:
    low, high = PLAUSIBLE_SPACING_MM
    return all(low <= value <= high for value in spacing)


def pixel_spacing(dataset: Any) -> tuple[float, float] | None:
    """(dy, dx) in mm from Pixel Spacing (0028,0030), where it holds two plausible values."""
    spacing = tag_numbers(dataset, "PixelSpacing")
    if not spacing or len(spacing) != 2 or not all(np.isfinite(spacing)) or not plausible_spacing(spacing):
        return None
    return (spacing[0], spacing[1])  # DICOM order: row spacing (dy), then column spacing (dx)


def _spacing_note(item: Any, label: str) -> str | None:
    """A note where the region states a distance spacing that cannot be right (so sizes stay in pixels)."""
    units = (tag_integer(item, "PhysicalUnitsXDirection"), tag_integer(item, "PhysicalUnitsYDirection"))
    dx, dy = tag_number(item, "PhysicalDeltaX"), tag_number(item, "PhysicalDeltaY")
    if units != (_UNITS_CM, _UNITS_CM) or dx is None or dy is None or _region_spacing(item) is not None:
        return None
    if not (np.isfinite(dx) and np.isfinite(dy)) or dx == 0 or dy == 0:
        return None  # absent in effect, as before: no calibration claimed
    return (f"{label} states a physical spacing of {abs(dx):g} x {abs(dy):g} cm a pixel, which cannot be right; "
            "it was ignored, so sizes are not given in mm")


def _one_region(index: int, item: Any, rows: int, columns: int) -> tuple[UltrasoundRegion | None, str | None]:
    """One region clamped to the matrix, or None with the reason it was dropped; and a warning, if any."""
    corners = [tag_integer(item, key) for key in
               ("RegionLocationMinX0", "RegionLocationMinY0", "RegionLocationMaxX1", "RegionLocationMaxY1")]
    spatial = tag_integer(item, "RegionSpatialFormat") or 0
    data_type = tag_integer(item, "RegionDataType") or 0
    label = f"region {index} ({_SPATIAL_NAMES.get(spatial, spatial)}, {_DATA_NAMES.get(data_type, data_type)})"
    if any(value is None for value in corners):
        return None, f"{label} has no complete Region Location and was ignored"
    x0, y0, x1, y1 = (int(value) for value in corners)  # type: ignore[arg-type]
    # The corners are inclusive pixel coordinates (PS3.3 C.8.5.5.1): a region 0..639 is 640 pixels wide.
    cx0, cy0 = max(x0, 0), max(y0, 0)
    cx1, cy1 = min(x1, columns - 1), min(y1, rows - 1)
    if cx1 < cx0 or cy1 < cy0:
        return None, f"{label} lies wholly outside the {columns}x{rows} pixel matrix and was dropped"
    clamped = (cx0, cy0, cx1, cy1) != (x0, y0, x1, y1)
    region = UltrasoundRegion(index=index, x=cx0, y=cy0, w=cx1 - cx0 + 1, h=cy1 - cy0 + 1,
                              spatial_format=spatial, data_type=data_type, spacing_mm=_region_spacing(item),
                              clamped=clamped)
    warning = _spacing_note(item, label)
    if clamped:
        # Usually an export that resized or cropped the frames but kept the scanner's regions (then the
        # physical spacing may be off as well).
        clamp = (f"{label} reached past the {columns}x{rows} pixel matrix and was clamped to "
                 f"x {cx0}-{cx1}, y {cy0}-{cy1}")
        warning = f"{warning}; {clamp}" if warning else clamp
    return region, warning


def regions_and_warnings(dataset: Any, size: tuple[int, int] | None = None) -> tuple[list[UltrasoundRegion], list[str]]:
    """The regions clamped to the pixel matrix: ``size`` (rows, columns) where the frames' own size was believed
    over the header's (data/dicom_frames.py), else Rows and Columns."""
    rows, columns = size or (tag_integer(dataset, "Rows") or 0, tag_integer(dataset, "Columns") or 0)
    regions: list[UltrasoundRegion] = []
    notes: list[str] = []
    for index, item in enumerate(tag_values(dataset, "SequenceOfUltrasoundRegions")):
        region, warning = _one_region(index, item, rows, columns)
        if region is not None:
            regions.append(region)
        if warning:
            notes.append(warning)
    return regions, notes


def ultrasound_regions(dataset: Any) -> list[UltrasoundRegion]:
    """The Sequence of Ultrasound Regions, clamped to the pixel matrix; regions with no area left are dropped."""
    return regions_and_warnings(dataset)[0]


def tissue_region(regions: list[UltrasoundRegion], choice: int | None = None) -> UltrasoundRegion | None:
    """The 2D tissue region to run on: the first one, or ``choice`` (0-based among them) for a dual view.

    Doppler spectra, M-mode strips, traces and colour-flow regions are never chosen: the model sees B-mode
    tissue only. None when the file has no 2D tissue region (the caller then uses the whole frame); an
    explicit ``choice`` that does not exist is an error, since it says the user expected another layout.
    """
    tissue = [region for region in regions if region.is_tissue_2d]
    if choice is None:
        return tissue[0] if tissue else None
    if not 0 <= choice < len(tissue):
        if not tissue:
            raise CosaEdgeError(f"2D tissue region {choice} was asked for but this file has no 2D tissue region; "
                                "leave the region choice out to use the whole frame")
        raise CosaEdgeError(f"2D tissue region {choice} was asked for but this file has {len(tissue)} 2D tissue "
                            f"region{'s' if len(tissue) > 1 else ''}; choose 0 to {len(tissue) - 1}")
    return tissue[choice]
