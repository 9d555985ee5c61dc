"""Lazy imports of heavy optional libraries with one clear message when absent.

The deploy side of cosa-edge must import without torch (an edge box has an
inference runtime, not a training stack), so torch, onnxruntime, tensorrt and
pycuda are imported where they are used, through :func:`require`.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import CosaEdgeError

#: module name -> (pip extra that installs it, what it is needed for)
_EXTRAS: dict[str, tuple[str, str]] = {
    "torch": ("train", "training, evaluation and export"),
    "torchvision": ("train", "the model's encoders"),
    "timm": ("lite", "the EfficientNet-Lite encoders"),
    "onnx": ("export", "ONNX export"),
    "onnxconverter_common": ("export", "FP16 conversion of ONNX models"),
    "onnxruntime": ("export", "the ONNX Runtime engine and INT8 quantization"),
    "openvino": ("openvino", "OpenVINO engines"),
    "tritonclient": ("triton", "Triton Inference Server model repositories and clients"),
    "google": ("triton", "Triton's model configuration schema (protobuf)"),
    "tensorrt": ("tensorrt", "TensorRT engines"),
    "pycuda": ("tensorrt", "TensorRT engines and the CUDA kernel"),
    "cupy": ("tensorrt", "the Python implementation of the TensorRT plugin (pip install cupy-cuda12x)"),
    "openpyxl": ("udiat", "reading DatasetB.xlsx"),
    "pydicom": ("dicom", "reading DICOM images and cine loops"),
    "highdicom": ("dicom", "writing DICOM Segmentation and measurement reports"),
}


def require(module: str) -> ModuleType:
    """Import ``module`` or raise a :class:`CosaEdgeError` naming the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        extra, purpose = _EXTRAS.get(module.split(".")[0], ("", "this feature"))
        hint = f"pip install 'cosa-edge[{extra}]'" if extra else f"pip install {module}"
        raise CosaEdgeError(f"{module} is needed for {purpose} but is not installed ({exc}); "
                            f"install it with: {hint}") from None
