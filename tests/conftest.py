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


@pytest.fixture(scope="session")
def trained_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small MTL-COSA (64 px) trained long enough to draw real lesion masks on phantoms."""
    pytest.importorskip("torch")
    from cosa_edge.config import load_preset
    from cosa_edge.data.phantom import make_phantom_dataset
    from cosa_edge.train.loop import train

    run = tmp_path_factory.mktemp("trained") / "run"
    config = load_preset("edge").replace(image_size=64, decoder_channels=(32, 16, 16, 8), epochs=15, batch_size=8,
                                         lr=1e-3, val_fraction=0.0, device="cpu", save_every=100)
    train(config, make_phantom_dataset(24, seed=11, size=(64, 64)), run, progress=False)
    return run / "last.pt"


@pytest.fixture(scope="session")
def exported_onnx(trained_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("onnx")
    from cosa_edge.export.onnx_export import export_onnx

    path = tmp_path_factory.mktemp("onnx") / "model.onnx"
    export_onnx(trained_checkpoint, path)
    return path
