"""Synthetic B-mode breast-ultrasound phantoms with exact lesion masks, deterministic by seed.

Not a physical simulation (no wave propagation): an echogenicity map of breast
layers and a lesion is turned into an image the way a scanner's display chain
does it, which is enough to exercise every part of the pipeline without data:

1. echogenicity: skin line, hypoechoic fat, brighter glandular tissue, muscle;
   a hypoechoic lesion; posterior acoustic shadowing under malignant lesions,
   slight posterior enhancement under benign ones;
2. speckle: a complex Gaussian field blurred by an anisotropic point-spread
   function, whose magnitude is Rayleigh distributed like real speckle;
3. depth attenuation, partly undone by time-gain compensation;
4. log compression to 8 bits.

The lesion follows the BI-RADS cues the COSA paper relies on: benign lesions are
smooth ovals wider than tall ("parallel" orientation); malignant ones are taller
than wide with an irregular or spiculated margin and cast a shadow.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .. import BENIGN, MALIGNANT, NO_LESION
from ..errors import CosaEdgeError
from .sample import Sample


@dataclass(frozen=True)
class Lesion:
    """A lesion as a closed polygon (x, y) in pixels plus its class."""

    polygon: np.ndarray
    label: int

    def mask(self, height: int, width: int) -> np.ndarray:
        canvas = np.zeros((height, width), np.uint8)
        cv2.fillPoly(canvas, [np.round(self.polygon).astype(np.int32)], 1)
        return canvas.astype(bool)


def make_lesion(rng: np.random.Generator, label: int, centre: tuple[float, float], size: float) -> Lesion:
    """A lesion outline from a radial function: an ellipse plus harmonics (and spicules if malignant)."""
    theta = np.linspace(0.0, 2.0 * np.pi, 360, endpoint=False)
    if label == BENIGN:
        width_over_height = rng.uniform(1.35, 1.9)
        semi_x, semi_y = size / 2, size / 2 / width_over_height
        harmonics, amplitude = range(2, 4), 0.03
    else:
        height_over_width = rng.uniform(1.1, 1.5)
        semi_x, semi_y = size / 2 / height_over_width, size / 2
        harmonics, amplitude = range(3, 11), 0.07
    radius = semi_x * semi_y / np.sqrt((semi_y * np.cos(theta)) ** 2 + (semi_x * np.sin(theta)) ** 2)
    wobble = sum(rng.uniform(0, amplitude) * np.cos(k * theta + rng.uniform(0, 2 * np.pi)) for k in harmonics)
    radius = radius * (1.0 + wobble)
    if label == MALIGNANT:
        for _ in range(int(rng.integers(5, 12))):  # spicules: narrow radial spikes
            angle, length = rng.uniform(0, 2 * np.pi), rng.uniform(0.15, 0.4)
            distance = np.angle(np.exp(1j * (theta - angle)))
            radius = radius * (1.0 + length * np.exp(-((distance / 0.06) ** 2)))
    polygon = np.stack([centre[0] + radius * np.cos(theta), centre[1] + radius * np.sin(theta)], axis=1)
    return Lesion(polygon=polygon, label=label)


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    field = cv2.GaussianBlur(rng.standard_normal(shape).astype(np.float32), (0, 0), sigma)
    return field / (field.std() + 1e-6)


def tissue_echogenicity(rng: np.random.Generator, height: int, width: int, view: int | None = None) -> np.ndarray:
    """Breast layers by depth: skin, fat, glandular tissue, pectoral muscle; float32 in about [0, 1.3].

    ``view``: the size of the probe's field of view, which sets the scale of the tissue's texture (a field
    wider than one view, for a sweep, keeps the texture of one view); by default the field's own size.
    """
    view = view or max(height, width)
    depth = np.arange(height, dtype=np.float32)[:, None] / height
    lateral_wave = 0.03 * _smooth_noise(rng, (1, width), width / 8)
    skin = rng.uniform(0.03, 0.05)
    fat_end = rng.uniform(0.18, 0.28) + lateral_wave
    gland_end = rng.uniform(0.72, 0.85) + lateral_wave
    echo = np.where(depth < skin, 1.2, np.where(depth < fat_end, 0.35, np.where(depth < gland_end, 0.75, 0.55)))
    echo = echo.astype(np.float32) * (1.0 + 0.18 * _smooth_noise(rng, (height, width), view / 20))
    muscle_stripes = 1.0 + 0.2 * np.sin(np.arange(height)[:, None] / height * 60
                                        + _smooth_noise(rng, (height, width), 8))
    return np.where(depth >= gland_end, echo * muscle_stripes, echo).astype(np.float32)


def add_lesion(echo: np.ndarray, lesion_mask: np.ndarray, label: int, rng: np.random.Generator) -> np.ndarray:
    """Darken the lesion and shade the tissue behind it (shadow if malignant, enhancement if benign)."""
    echo = echo.copy()
    echo[lesion_mask] *= rng.uniform(0.12, 0.3)
    columns = np.flatnonzero(lesion_mask.any(axis=0))
    if columns.size:
        bottom = np.where(lesion_mask.any(axis=0), lesion_mask.shape[0] - 1 - np.argmax(lesion_mask[::-1], axis=0), -1)
        rows = np.arange(echo.shape[0])[:, None]
        behind = (rows > bottom[None, :]) & (bottom[None, :] >= 0)
        factor = rng.uniform(0.25, 0.5) if label == MALIGNANT else rng.uniform(1.1, 1.3)
        shading = np.where(behind, factor, 1.0).astype(np.float32)
        shading = cv2.GaussianBlur(shading, (0, 0), sigmaX=3, sigmaY=1)  # soft shadow edges
        echo *= np.where(lesion_mask, 1.0, shading)
    return echo


def speckle_components(rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """The real and imaginary parts of the echo field, correlated over a few pixels, wider laterally."""
    real = rng.standard_normal((height, width)).astype(np.float32)
    imag = rng.standard_normal((height, width)).astype(np.float32)
    return (cv2.GaussianBlur(real, (0, 0), sigmaX=1.6, sigmaY=0.8),
            cv2.GaussianBlur(imag, (0, 0), sigmaX=1.6, sigmaY=0.8))


def speckle_from(real: np.ndarray, imag: np.ndarray) -> np.ndarray:
    amplitude = np.hypot(real, imag)
    return amplitude / amplitude.mean()


def speckle_field(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Unit-mean Rayleigh speckle correlated over a few pixels, wider laterally than axially."""
    return speckle_from(*speckle_components(rng, height, width))


def render_bmode(echo: np.ndarray, speckle: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Echogenicity x speckle -> attenuation and TGC -> log compression -> uint8."""
    height = echo.shape[0]
    depth = np.arange(height, dtype=np.float32)[:, None] / height
    attenuation = np.exp(-rng.uniform(1.0, 2.0) * depth) * (1.0 + rng.uniform(0.3, 0.8) * depth)  # partial TGC
    envelope = echo * speckle * attenuation
    compressed = np.log1p(12.0 * envelope) / np.log1p(12.0 * 4.0)
    return np.clip(compressed * 255.0, 0, 255).astype(np.uint8)


def _lesion_centre_x(draw: float, width: int, lesion_size: float, at_edge: bool) -> float:
    """The lesion's centre from one uniform draw in [0.3, 0.7]: mid-field, or at the left or right side.

    At the side, the centre lies between the side itself (half the lesion in view) and a third of the lesion's
    size inside it (the narrowest lesion, a malignant one 1.5 times taller than wide, then touches the side).
    One draw either way keeps the random stream, and so the rest of the phantom, the same.
    """
    if not at_edge:
        return draw * width
    position = (draw - 0.3) / 0.4  # in [0, 1]: the lower half goes to the left side, the upper to the right
    offset = (position % 0.5) * 2.0 * lesion_size / 3.0
    return offset if position < 0.5 else width - 1 - offset


def make_phantom(seed: int, label: int | None = None, size: tuple[int, int] = (256, 256),
                 at_edge: bool = False) -> Sample:
    """One phantom image with one lesion, or none for ``label=NO_LESION``; the same seed gives the same image.

    ``at_edge``: the lesion sits at the left or right side of the field, partly out of view, as a sweeping
    probe sees a lesion enter and leave. A model that has seen only centred lesions stops its masks short of
    the image's side, so that a lesion cut by the side looked wholly in view (and was judged).
    """
    rng = np.random.default_rng(seed)
    height, width = size
    if label is None:
        label = int(rng.integers(0, 2))
    lesion_size = rng.uniform(0.2, 0.4) * min(height, width)
    centre = (_lesion_centre_x(rng.uniform(0.3, 0.7), width, lesion_size, at_edge), rng.uniform(0.4, 0.6) * height)
    if label == NO_LESION:
        # Healthy tissue only: the same texture, no lesion drawn (the lesion's draws keep the stream aligned).
        make_lesion(rng, BENIGN, centre, lesion_size)
        mask = np.zeros((height, width), bool)
        echo = tissue_echogenicity(rng, height, width)
    else:
        lesion = make_lesion(rng, label, centre, lesion_size)
        mask = lesion.mask(height, width)
        echo = add_lesion(tissue_echogenicity(rng, height, width), mask, label, rng)
    image = render_bmode(echo, speckle_field(rng, height, width), rng)
    return Sample(name=f"phantom_{seed:05d}", image=image, mask=mask, label=label, source="phantom")


def _spread(count: int, fraction: float) -> np.ndarray:
    """A bool array with about ``fraction`` of ``count`` set, spread evenly (no run of one kind)."""
    return np.arange(count) * fraction % 1.0 + fraction >= 1.0 - 1e-9


def make_phantom_dataset(count: int, seed: int = 0, size: tuple[int, int] = (256, 256),
                         malignant_fraction: float = 1 / 3, normal_fraction: float = 0.0,
                         edge_fraction: float = 0.0) -> list[Sample]:
    """``count`` phantoms with about BUSI's class balance (a third of the lesions malignant) unless told otherwise.

    ``normal_fraction`` of them hold no lesion (label NO_LESION), spread evenly among the others;
    ``edge_fraction`` of each class's lesions sit at the side of the field, partly out of view.
    """
    if count < 1:
        raise CosaEdgeError(f"a phantom data set needs at least one image, not {count}")
    for name, fraction in (("lesion-free phantoms", normal_fraction), ("lesions at the edge", edge_fraction)):
        if not 0.0 <= fraction < 1.0:
            raise CosaEdgeError(f"the share of {name} must lie in [0, 1), not {fraction}")
    normal = _spread(count, normal_fraction) if normal_fraction else np.zeros(count, bool)
    malignant = _spread(int((~normal).sum()), malignant_fraction)
    labels = np.full(count, NO_LESION)
    labels[~normal] = malignant.astype(int)
    at_edge = np.zeros(count, bool)
    for label in (BENIGN, MALIGNANT):  # spread within each class, so both classes are seen at the edge
        members = np.flatnonzero(labels == label)
        if edge_fraction and members.size:
            at_edge[members] = _spread(members.size, edge_fraction)
    return [make_phantom(seed * 100_003 + i, label=int(labels[i]), size=size, at_edge=bool(at_edge[i]))
            for i in range(count)]


# The share of a frame's speckle field that decorrelates from one frame to the next (a hand-held probe),
# as amplitude weights whose squares add to one, so that the mixed field has the same statistics.
_FRESH = float(np.sqrt(0.15))
_KEPT = float(np.sqrt(0.85))


@dataclass(frozen=True)
class SweepFrame:
    index: int
    image: np.ndarray
    mask: np.ndarray


def phantom_sweep(seed: int, frames: int = 120, size: tuple[int, int] = (256, 320),
                  label: int | None = None) -> Iterator[SweepFrame]:
    """A probe sliding laterally over a phantom three frames wide that holds one lesion in its middle.

    The tissue and its speckle move with the probe; a little fresh speckle each
    frame imitates the decorrelation of a hand-held probe.
    """
    rng = np.random.default_rng(seed)
    height, width = size
    wide = width * 3
    if label is None:
        label = int(rng.integers(0, 2))
    lesion = make_lesion(rng, label, (wide / 2, rng.uniform(0.45, 0.6) * height), rng.uniform(0.25, 0.4) * min(size))
    wide_mask = lesion.mask(height, wide)
    echo = add_lesion(tissue_echogenicity(rng, height, wide, view=max(size)), wide_mask, label, rng)
    real, imag = speckle_components(rng, height, wide)
    render_rng = np.random.default_rng(seed + 1)
    for index in range(frames):
        offset = int(round(index / max(frames - 1, 1) * (wide - width)))
        window = slice(offset, offset + width)
        fresh_real, fresh_imag = speckle_components(render_rng, height, width)
        frame_rng = np.random.default_rng([seed, index])
        # Mixing the fields (not their amplitudes) keeps the speckle Rayleigh-distributed, as in the still
        # phantoms: amplitudes averaged have less contrast, which the out-of-distribution score notices.
        mixed = speckle_from(_KEPT * real[:, window] + _FRESH * fresh_real,
                             _KEPT * imag[:, window] + _FRESH * fresh_imag)
        image = render_bmode(echo[:, window], mixed, frame_rng)
        yield SweepFrame(index=index, image=image, mask=wide_mask[:, window].copy())


def write_sweep_video(path: Path, seed: int = 0, frames: int = 120, size: tuple[int, int] = (256, 320),
                      fps: float = 20.0) -> Path:
    """Render :func:`phantom_sweep` to a video file (mp4v in .mp4, MJPG in .avi), written atomically."""
    path = Path(path)
    fourcc = {".mp4": "mp4v", ".mov": "mp4v", ".avi": "MJPG"}.get(path.suffix.lower())
    if fourcc is None:
        raise CosaEdgeError(f"cannot write video {path}: use a .mp4, .mov or .avi name")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.partial{path.suffix}")  # OpenCV picks the container by suffix
    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*fourcc), fps, (size[1], size[0]), isColor=True)
    if not writer.isOpened():
        raise CosaEdgeError(f"OpenCV cannot write {fourcc} video to {path}")
    try:
        for frame in phantom_sweep(seed, frames, size):
            writer.write(cv2.cvtColor(frame.image, cv2.COLOR_GRAY2BGR))
    finally:
        writer.release()
    os.replace(tmp, path)
    return path
