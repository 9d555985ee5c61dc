"""The trained model behind the engine contract, and what an artifact made from a checkpoint says of it.

:class:`DeployModule` (grey levels in, probabilities out) is what ONNX export traces and what the PyTorch engine
runs; :func:`deploy_metadata` is the one constructor of a model's metadata from its checkpoint, for both.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from .. import __version__
from ..contract import CLASS_OUTPUT, LESION_OUTPUT, OOD_OUTPUT, ModelMetadata
from ..data.preprocess import DEFAULT_NORMALISATION, Normalisation
from ..errors import CosaEdgeError
from ..model import CLS_LOGITS, FEATURES, SEG_LOGITS, model_normalisation

if TYPE_CHECKING:
    from ..train.checkpoint import Checkpoint


class MahalanobisScore(nn.Module):
    """The squared Mahalanobis distance of pooled features to the training features' Gaussian (cosa_edge/ood.py)."""

    def __init__(self, mean: torch.Tensor, precision: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mean", mean.float().clone())
        self.register_buffer("precision", precision.float().clone())

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        difference = features.float() - self.mean
        return ((difference @ self.precision) * difference).sum(dim=1, keepdim=True)


def normalisation_record(model: nn.Module) -> dict[str, float]:
    """The input statistics applied inside the graph, as the metadata records them."""
    norm = model_normalisation(model)
    return {"mean": norm.mean, "std": norm.std}


class DeployModule(nn.Module):
    """The trained model behind the engine contract: grey levels in, probabilities out.

    ``temperature``: the class logits are divided by it before the softmax (temperature scaling,
    fitted on validation data: cosa_edge/calibration.py), so every engine exported from this module
    gives the same calibrated probabilities.
    """

    def __init__(self, model: nn.Module, norm: Normalisation = DEFAULT_NORMALISATION, temperature: float = 1.0,
                 ood: MahalanobisScore | None = None) -> None:
        super().__init__()
        if not temperature > 0:
            raise CosaEdgeError(f"the calibration temperature must be positive, not {temperature}")
        self.model = model
        self.scale = 1.0 / (255.0 * norm.std)
        self.shift = norm.mean / norm.std
        self.temperature = float(temperature)
        # Named "ood": its nodes export under /ood/, which the FP16 conversion keeps in FP32 (squared distances
        # of hundreds of dimensions overflow FP16's 65504).
        self.ood = ood
        self.tasks = tuple(model.tasks)

    @classmethod
    def of_checkpoint(cls, model: nn.Module, checkpoint: Checkpoint) -> DeployModule:
        """The module with the checkpoint's own calibration (temperature 1 where none was fitted) and, where
        training fitted one, its out-of-distribution score."""
        score = MahalanobisScore(checkpoint.ood["mean"], checkpoint.ood["precision"]) \
            if checkpoint.has_ood_score else None
        return cls(model, norm=model_normalisation(model), temperature=checkpoint.temperature, ood=score)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        outputs = self.model(image * self.scale - self.shift)
        results = []
        if SEG_LOGITS in outputs:
            # softmax(l)[1] over two classes is sigmoid(l1 - l0): the same probability (and the same
            # mask at > 0.5, ties to background), without a channel-axis softmax that runtimes transpose for.
            logits = outputs[SEG_LOGITS]
            results.append(torch.sigmoid(logits[:, 1:2] - logits[:, 0:1]))
        if CLS_LOGITS in outputs:
            logits = outputs[CLS_LOGITS]
            # No division at temperature 1: the graph stays what it was before calibration existed.
            results.append(F.softmax(logits / self.temperature if self.temperature != 1.0 else logits, dim=1))
        if self.ood is not None and FEATURES in outputs:
            results.append(self.ood(outputs[FEATURES]))
        return tuple(results)

    @property
    def output_names(self) -> list[str]:
        names = []
        if "segmentation" in self.tasks:
            names.append(LESION_OUTPUT)
        if "classification" in self.tasks:
            names.append(CLASS_OUTPUT)
        if self.ood is not None:
            names.append(OOD_OUTPUT)
        return names


def deploy_metadata(model: nn.Module, checkpoint: Checkpoint, outputs: list[str], cosa_op: str = "onnx"
                    ) -> ModelMetadata:
    """The metadata of an artifact made from a checkpoint (and its loaded ``model``) with these ``outputs``: what
    the model is, where its data came from, its presence rule, calibration and OOD gate."""
    model_config = checkpoint.config.model
    return ModelMetadata(
        architecture=model_config.architecture, encoder=model_config.encoder, input_size=model_config.image_size,
        outputs=tuple(outputs), cosa_edge_version=__version__, weights_sha256=checkpoint.weights_sha256,
        normalisation=normalisation_record(model), training_data=checkpoint.data, cosa_op=cosa_op,
        presence=checkpoint.presence, calibration=checkpoint.calibration,
        ood=checkpoint.ood_description if OOD_OUTPUT in outputs else {})
