"""Shared fixtures, and automatic skips for tests that need a GPU, TensorRT or torch."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BUSI_PATH = REPO.parent / "shared" / "data" / "busi" / "Dataset_BUSI_with_GT"


def _cuda_available() -> bool:
    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return torch.cuda.is_available()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU")
    skip_trt = pytest.mark.skip(reason="needs TensorRT (pip install 'cosa-edge[tensorrt]' on an NVIDIA machine)")
    has_gpu = _cuda_available()
    has_trt = importlib.util.find_spec("tensorrt") is not None
    for item in items:
        if "gpu" in item.keywords and not has_gpu:
            item.add_marker(skip_gpu)
        if "trt" in item.keywords and not has_trt:
            item.add_marker(skip_trt)


@pytest.fixture(scope="session")
def busi_path() -> Path:
    if not BUSI_PATH.is_dir():
        pytest.skip(f"real BUSI data not found at {BUSI_PATH}")
    return BUSI_PATH
