from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from cosa_edge import backends
from cosa_edge.backends import backend_for, open_engine
from cosa_edge.engines.build import BatchRange
from cosa_edge.engines.tensorrt_engine import check_compatible, read_sidecar
from cosa_edge.errors import CosaEdgeError


def test_onnx_engine_runs_without_torch(exported_onnx: Path) -> None:
    """The one opener, cosa_edge.backends.open_engine, imports the PyTorch engine's torch only for a .pt file."""
    code = (f"import sys, numpy as np\nfrom cosa_edge.backends import open_engine\n"
            f"e = open_engine({str(exported_onnx)!r})\nout = e.infer(np.zeros((2, 1, 64, 64), np.float32))\n"
            "print(sorted(out), 'torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "['class_probabilities', 'lesion_probability'] False"


def test_one_open_engine_and_one_table_of_runtimes() -> None:
    import cosa_edge.engines as engines
    from cosa_edge.backends import RUNTIMES

    assert not hasattr(engines, "open_engine")  # the deploy side opens through its records: runtime.open(path)
    assert set(RUNTIMES) == {*engines.RUNTIMES, "torch"}
    for runtime in RUNTIMES.values():  # each record's suffixes lead back to it
        assert all(backend_for(Path(f"m{suffix}")) == runtime.name for suffix in runtime.suffixes)


def test_backend_by_suffix() -> None:
    assert backend_for(Path("a.onnx")) == "onnxruntime"
    assert backend_for(Path("b.engine")) == backend_for(Path("b.plan")) == "tensorrt"
    assert backend_for(Path("c.pt")) == "torch"
    with pytest.raises(CosaEdgeError, match="--backend"):
        backend_for(Path("d.bin"))
    with pytest.raises(CosaEdgeError, match="does not exist"):
        open_engine("missing.onnx")
    with pytest.raises(CosaEdgeError, match="does not exist"):
        backends.open_engine("missing.pt")


def test_the_runtime_sides_table_does_not_know_checkpoints(tmp_path: Path) -> None:
    from cosa_edge.engines import runtime_for

    checkpoint = tmp_path / "m.pt"
    checkpoint.write_bytes(b"not read: the runtime side refuses by suffix")
    with pytest.raises(CosaEdgeError, match="cannot tell the runtime of .*m.pt"):
        runtime_for(checkpoint)  # the deploy side's table: no PyTorch
    with pytest.raises(CosaEdgeError, match="corrupt or not a PyTorch checkpoint"):
        open_engine(checkpoint)  # the whole table sends it to the PyTorch engine, which reads and refuses it
    with pytest.raises(CosaEdgeError, match="unknown backend 'tflite'"):
        backends.open_engine(checkpoint, backend="tflite")


def test_torch_and_onnx_engines_share_the_interface(exported_onnx: Path, trained_checkpoint: Path) -> None:
    for path in (exported_onnx, trained_checkpoint):
        with backends.open_engine(path) as engine:
            assert [s.name for s in engine.inputs] == ["image"]
            assert [s.name for s in engine.outputs] == ["lesion_probability", "class_probabilities"]
            assert engine.warmup(iterations=1, batch_size=2) > 0
            assert "compute" in engine.last_times.stages
            assert engine.metadata.input_size == 64


def test_tensorrt_compatibility_check_names_the_mismatch() -> None:
    build = {"tensorrt_version": "10.13.0", "gpu": "NVIDIA H100", "compute_capability": [9, 0]}
    check_compatible(build, "10.13.0", "NVIDIA H100", (9, 0), Path("m.engine"))
    with pytest.raises(CosaEdgeError, match="built with TensorRT 10.13.0 but this machine has 11.0.0"):
        check_compatible(build, "11.0.0", "NVIDIA H100", (9, 0), Path("m.engine"))
    with pytest.raises(CosaEdgeError, match=r"built for NVIDIA H100 \(compute capability 9.0\) but this GPU is .*8.7"):
        check_compatible(build, "10.13.0", "Orin", (8, 7), Path("m.engine"))
    check_compatible({**build, "hardware_compatible": True}, "10.13.0", "Orin", (8, 7), Path("m.engine"))


def test_tensorrt_engine_without_sidecar_is_refused(tmp_path: Path) -> None:
    (tmp_path / "m.engine").write_bytes(b"plan")
    with pytest.raises(CosaEdgeError, match="has no sidecar"):
        read_sidecar(tmp_path / "m.engine")
    (tmp_path / "m.engine.json").write_text("{not json")
    with pytest.raises(CosaEdgeError, match="not valid JSON"):
        read_sidecar(tmp_path / "m.engine")


def test_batch_range_parsing() -> None:
    assert BatchRange.parse("1:4:8") == BatchRange(1, 4, 8)
    assert BatchRange.parse("2") == BatchRange(2, 2, 2)
    for bad in ("8:4:1", "0:1:2", "a:b:c", "1:2"):
        with pytest.raises(CosaEdgeError, match="MIN:OPT:MAX"):
            BatchRange.parse(bad)
