"""The automatic skips of `gpu` and `trt` tests name what is missing (tests/conftest.py)."""

from __future__ import annotations

import importlib.util
import sys
import types

import pytest

from tests import conftest


def test_tensorrt_without_pycuda_names_pycuda(monkeypatch: pytest.MonkeyPatch) -> None:
    full = types.ModuleType("tensorrt")
    full.Builder, full.__version__ = object, "11.4.0"
    monkeypatch.setitem(sys.modules, "tensorrt", full)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: (object() if name == "tensorrt" else None if name == "pycuda"
                                          else real(name, *a)))
    assert conftest._full_tensorrt_missing() == ["pycuda"]


def test_a_tensorrt_without_builder_is_not_the_full_tensorrt(monkeypatch: pytest.MonkeyPatch) -> None:
    lean = types.ModuleType("tensorrt")
    lean.__version__ = "11.4.0"
    monkeypatch.setitem(sys.modules, "tensorrt", lean)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object())
    assert conftest._full_tensorrt_missing() == ["the full TensorRT (this tensorrt 11.4.0 has no builder)"]


def test_nothing_installed_names_everything(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in ("tensorrt", "pycuda") else real(name, *a))
    assert conftest._full_tensorrt_missing() == ["TensorRT (no tensorrt module)", "pycuda"]


def test_the_gpu_reason_says_what_is_missing() -> None:
    reason = conftest._cuda_gpu_missing()
    torch_cuda = importlib.util.find_spec("torch") is not None and __import__("torch").cuda.is_available()
    assert (reason is None) == torch_cuda
    if reason is not None:
        assert "CUDA GPU" in reason
