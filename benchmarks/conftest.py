"""Benchmarks reuse the test fixtures (a small trained checkpoint and its ONNX export)."""

from tests.conftest import busi_path, exported_onnx, pytest_collection_modifyitems, trained_checkpoint  # noqa: F401
