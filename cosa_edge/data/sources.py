"""Data-set specifications as the command line writes them: ``phantom``, ``busi:PATH`` ..."""

from __future__ import annotations

from pathlib import Path

from ..errors import CosaEdgeError
from .busi import load_busi
from .folder import load_folder
from .phantom import make_phantom_dataset
from .sample import Sample
from .udiat import load_udiat

DATA_SPEC_HELP = (
    "phantom[:COUNT] (synthetic, no download), busi:PATH (BUSI's published layout), "
    "udiat:PATH (Dataset B: original/, GT/, DatasetB.xlsx) or folder:PATH (images/, masks/, labels.csv)"
)

_LOADERS = {"busi": load_busi, "udiat": load_udiat, "folder": load_folder}


#: The share of lesion-free phantoms with include_normal, about BUSI's (133 normal of 780 images).
PHANTOM_NORMAL_FRACTION = 0.2
#: The share of each class's phantom lesions placed at the side of the field, partly out of view (a probe
#: sweep shows every lesion entering and leaving the image; BUSI's stills mostly centre theirs).
PHANTOM_EDGE_FRACTION = 0.25


def data_spec_name(spec: str) -> str:
    """A data spec as an engine's metadata records it: its kind and the folder's own name, not the path above it
    (a folder of one patient's images can sit in a folder named after the patient)."""
    kind, sep, argument = spec.partition(":")
    if not sep or kind.strip().lower() == "phantom" or not argument:
        return spec
    return f"{kind}:{Path(argument).name}"


def data_spec_folder(spec: str | None) -> Path | None:
    """The folder a data spec reads (busi:PATH, udiat:PATH, folder:PATH); None for phantoms and .npy files."""
    if not spec:
        return None
    kind, _, argument = spec.partition(":")
    return Path(argument).expanduser() if kind.strip().lower() in _LOADERS and argument else None


def load_dataset(spec: str, progress: bool = True, phantom_size: int = 256, seed: int = 0,
                 include_normal: bool = False) -> list[Sample]:
    """Load the data set that ``spec`` names; see :data:`DATA_SPEC_HELP`.

    ``include_normal``: also lesion-free images (BUSI's normal/ folder; a fifth of the phantoms).
    """
    kind, _, argument = spec.partition(":")
    kind = kind.strip().lower()
    if kind == "phantom":
        try:
            count = int(argument) if argument else 96
        except ValueError:
            raise CosaEdgeError(f"data spec {spec!r}: phantom takes a count, e.g. phantom:96") from None
        return make_phantom_dataset(count, seed=seed, size=(phantom_size, phantom_size),
                                    normal_fraction=PHANTOM_NORMAL_FRACTION if include_normal else 0.0,
                                    edge_fraction=PHANTOM_EDGE_FRACTION)
    if kind in _LOADERS:
        if not argument:
            raise CosaEdgeError(f"data spec {spec!r} needs a path, e.g. {kind}:/data/{kind}")
        if include_normal and kind != "busi":
            raise CosaEdgeError(f"--include-normal reads lesion-free images from busi: and phantom: data, not {kind}:")
        options = {"include_normal": True} if include_normal else {}
        samples = _LOADERS[kind](Path(argument).expanduser(), progress=progress, **options)
        if not samples:
            raise CosaEdgeError(f"data set {spec!r} is empty")
        return samples
    raise CosaEdgeError(f"unknown data spec {spec!r}; use {DATA_SPEC_HELP}")
