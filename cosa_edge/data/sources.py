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


def load_dataset(spec: str, progress: bool = True, phantom_size: int = 256, seed: int = 0) -> list[Sample]:
    """Load the data set that ``spec`` names; see :data:`DATA_SPEC_HELP`."""
    kind, _, argument = spec.partition(":")
    kind = kind.strip().lower()
    if kind == "phantom":
        try:
            count = int(argument) if argument else 96
        except ValueError:
            raise CosaEdgeError(f"data spec {spec!r}: phantom takes a count, e.g. phantom:96") from None
        return make_phantom_dataset(count, seed=seed, size=(phantom_size, phantom_size))
    if kind in _LOADERS:
        if not argument:
            raise CosaEdgeError(f"data spec {spec!r} needs a path, e.g. {kind}:/data/{kind}")
        samples = _LOADERS[kind](Path(argument).expanduser(), progress=progress)
        if not samples:
            raise CosaEdgeError(f"data set {spec!r} is empty")
        return samples
    raise CosaEdgeError(f"unknown data spec {spec!r}; use {DATA_SPEC_HELP}")
