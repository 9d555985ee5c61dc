"""MTL-COSA and the paper's comparison models (PyTorch; needs the ``train`` extra)."""

from .networks import CLS_LOGITS, FEATURES, SEG_LOGITS
from ..config import ModelConfig
from .registry import ARCHITECTURES, build_model, model_normalisation

__all__ = ["ARCHITECTURES", "CLS_LOGITS", "FEATURES", "ModelConfig", "SEG_LOGITS", "build_model",
           "model_normalisation"]
