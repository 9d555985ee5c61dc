"""pytest-benchmark suites: `pytest benchmarks/ --benchmark-only` (add --benchmark-json=FILE to keep them).

Speed is compared side by side within one run; nothing here asserts a wall-clock limit.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cosa_edge.data import preprocess, resize_grey
from cosa_edge.data.phantom import make_phantom, write_sweep_video
from cosa_edge.kernels.reference import region_maps
from cosa_edge.stream.overlay import draw_overlay
from cosa_edge.stream.postprocess import frame_roi, summarise

FRAME = make_phantom(5, size=(480, 640)).image


@pytest.fixture(scope="module")
def scores() -> np.ndarray:
    rng = np.random.default_rng(0)
    import cv2

    return np.stack([cv2.GaussianBlur(rng.standard_normal((256, 256)).astype(np.float32), (0, 0), 8) * s
                     for s in (-1, 1)])[None]


def test_preprocess(benchmark) -> None:  # noqa: ANN001
    benchmark.group = "frame stages"
    out = benchmark(preprocess, FRAME, 256)
    assert out.shape == (1, 256, 256)


def test_postprocess_and_overlay(benchmark) -> None:  # noqa: ANN001
    benchmark.group = "frame stages"
    probability = np.zeros((256, 256), np.float32)
    probability[100:160, 90:170] = 0.9
    roi = frame_roi(FRAME.shape, None)

    def post() -> np.ndarray:
        return draw_overlay(FRAME, summarise(0, 0.0, probability, np.array([0.2, 0.8]), roi, 0.0), roi, fps=20.0)

    assert benchmark(post).shape == (480, 640, 3)


def test_region_masks_numpy_reference(benchmark, scores) -> None:  # noqa: ANN001
    benchmark.group = "region masks (1, 2, 256, 256) -> 8x8"
    assert benchmark(region_maps, scores, (8, 8)).shape == (1, 3, 8, 8)


def test_region_masks_torch_op_by_op(benchmark, scores) -> None:  # noqa: ANN001
    torch = pytest.importorskip("torch")
    from cosa_edge.model.regions import region_maps as torch_region_maps

    benchmark.group = "region masks (1, 2, 256, 256) -> 8x8"
    tensor = torch.from_numpy(scores)
    assert benchmark(torch_region_maps, tensor, (8, 8)).shape == (1, 3, 8, 8)


@pytest.mark.gpu
def test_region_masks_cuda_kernel_vs_torch_cuda(benchmark, scores) -> None:  # noqa: ANN001
    """The fused kernel on device data against the same op-by-op PyTorch on the GPU."""
    torch = pytest.importorskip("torch")
    cupy = pytest.importorskip("cupy")
    from cosa_edge.kernels.cuda import BLOCK, _cupy_module, launch_geometry
    from cosa_edge.model.regions import region_maps as torch_region_maps

    batch = np.repeat(scores, 8, axis=0)
    device_scores, out = cupy.asarray(batch), cupy.empty((8, 3, 8, 8), cupy.float32)
    kernel = _cupy_module(cupy).get_function("cosa_region_masks_f32")
    geometry = launch_geometry(batch.shape, (8, 8))

    def fused() -> None:
        kernel(geometry.grid, BLOCK, (device_scores, np.int32(256), np.int32(256), np.int32(8), np.int32(8), out))
        cupy.cuda.Device().synchronize()

    tensor = torch.from_numpy(batch).cuda()

    def op_by_op() -> None:
        torch_region_maps(tensor, (8, 8))
        torch.cuda.synchronize()

    import timeit

    torch_seconds = min(timeit.repeat(op_by_op, number=50, repeat=5)) / 50
    benchmark.group = "region masks on GPU (8, 2, 256, 256)"
    benchmark.extra_info["torch_op_by_op_ms"] = torch_seconds * 1e3
    benchmark(fused)
    benchmark.extra_info["speedup_over_torch"] = torch_seconds / benchmark.stats.stats.median
    np.testing.assert_array_equal(cupy.asnumpy(out), torch_region_maps(tensor, (8, 8)).cpu().numpy())


@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
def test_engine_batch1(benchmark, backend: str, trained_checkpoint: Path, exported_onnx: Path) -> None:  # noqa: ANN001
    from cosa_edge.backends import open_engine  # the PyTorch checkpoint too

    path = trained_checkpoint if backend == "torch" else exported_onnx
    benchmark.group = "engine, batch 1"
    with open_engine(path, backend=backend) as engine:
        batch = resize_grey(FRAME, engine.input_size).astype(np.float32)[None, None]
        engine.warmup(3)
        benchmark(engine.infer, batch)


def test_full_pipeline(benchmark, exported_onnx: Path, tmp_path: Path) -> None:  # noqa: ANN001
    from cosa_edge.backends import open_engine
    from cosa_edge.stream.run import infer_source

    video = write_sweep_video(tmp_path / "v.mp4", seed=3, frames=60)
    benchmark.group = "streaming pipeline, 60 frames"
    with open_engine(exported_onnx) as engine:
        stats = benchmark.pedantic(lambda: infer_source(str(video), engine, tmp_path / "o.mp4", tmp_path / "o.jsonl",
                                                        progress=False), rounds=3, iterations=1)
    benchmark.extra_info["frames_per_second"] = stats.fps
