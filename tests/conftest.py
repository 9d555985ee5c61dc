"""Shared fixtures, and automatic skips for tests that need a GPU, TensorRT or torch."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BUSI_PATH = REPO.parent / "shared" / "data" / "busi" / "Dataset_BUSI_with_GT"


def _cuda_gpu_missing() -> str | None:
    """None where a CUDA GPU can be used, else what is missing (torch's view where torch is installed)."""
    if importlib.util.find_spec("torch") is not None:
        import torch

        return None if torch.cuda.is_available() else "a CUDA GPU (torch.cuda.is_available() is False)"
    from cosa_edge.kernels.cuda import driver_cuda_version

    return None if driver_cuda_version() else "a CUDA GPU (no NVIDIA driver found)"


def _full_tensorrt_missing() -> list[str]:
    """What the `trt` tests need and this machine lacks: the full TensorRT (builder and parser) and pycuda."""
    missing = []
    if importlib.util.find_spec("tensorrt") is None:
        missing.append("TensorRT (no tensorrt module)")
    else:
        import tensorrt

        if not hasattr(tensorrt, "Builder"):
            missing.append(f"the full TensorRT (this tensorrt {getattr(tensorrt, '__version__', '?')} has no builder)")
    if importlib.util.find_spec("pycuda") is None:
        missing.append("pycuda")
    return missing


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    wants_gpu = any("gpu" in item.keywords for item in items)
    wants_trt = any("trt" in item.keywords for item in items)
    gpu_missing = _cuda_gpu_missing() if wants_gpu else None
    trt_missing = _full_tensorrt_missing() if wants_trt else []
    for item in items:
        missing = []
        if "trt" in item.keywords:
            missing += trt_missing
        if "gpu" in item.keywords and gpu_missing:
            missing.append(gpu_missing)
        if missing:
            hint = " (pip install 'cosa-edge[tensorrt]' on an NVIDIA GPU machine)" if "trt" in item.keywords else ""
            item.add_marker(pytest.mark.skip(reason="needs " + ", ".join(missing) + hint))


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
    # The paper's loss and a constant rate (not the edge preset's BUSI recipe): the tests' expectations of this
    # model's masks and verdicts on phantoms were set with them.
    config = load_preset("edge").replace(lr_schedule="constant", dice_weight=0.0, presence_weight=0.0,
                                         balance_classes=False, image_size=64, decoder_channels=(32, 16, 16, 8),
                                         epochs=15, batch_size=8, lr=1e-3, val_fraction=0.0, device="cpu",
                                         save_every=100)
    train(config, make_phantom_dataset(24, seed=11, size=(64, 64)), run, progress=False)
    return run / "last.pt"


@pytest.fixture(scope="session")
def exported_onnx(trained_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("onnx")
    from cosa_edge.export.onnx_export import export_onnx

    path = tmp_path_factory.mktemp("onnx") / "model.onnx"
    export_onnx(trained_checkpoint, path)
    return path
