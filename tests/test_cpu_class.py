"""INT8 engines compute alike on every x86 CPU class, and say which class their accuracy check ran on.

Real: ONNX Runtime, its quantizer and the small trained model of conftest. The AVX2 CPU without VNNI is
emulated: QEMU's user mode (Debian's qemu-user) runs this same Python, numpy and ONNX Runtime with the CPUID of
an AMD EPYC-Milan (AVX2, no AVX-512, no VNNI), so ONNX Runtime takes its real non-VNNI 8-bit kernels there. The
CPU-class classification is also tested on made-up feature sets (monkeypatched), which no machine here has.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from cosa_edge import hardware
from cosa_edge.data.phantom import make_phantom_dataset
from cosa_edge.backends import open_engine
from cosa_edge.evaluation.comparison import compare_to_reference
from cosa_edge.engines.int8 import SCHEMES, calibration_from_samples, quantize_int8
from cosa_edge.engines.build import Int8Recipe, build_engine
from cosa_edge.errors import CosaEdgeWarning

SIZE = 64
EMULATED_CPU = "EPYC-Milan"  # AMD Zen 3: AVX2, no AVX-512, no VNNI
REPO = Path(__file__).resolve().parents[1]


def _classify(monkeypatch: pytest.MonkeyPatch, features: set[str], proc_flags: set[str]) -> str:
    hardware.cpu_class.cache_clear()
    monkeypatch.setattr(hardware, "cpu_features", lambda: tuple(sorted(features)))
    monkeypatch.setattr(hardware, "_proc_flags", lambda: proc_flags)
    try:
        return hardware.cpu_class()
    finally:
        hardware.cpu_class.cache_clear()


def test_cpu_classes_come_from_cpuid_and_an_emulators_proc_flags_are_not_believed(
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert _classify(monkeypatch, {"SSE2", "AVX2", "AVX512F", "AVX512VNNI"}, set()) == "avx512_vnni"
    assert _classify(monkeypatch, {"SSE2", "AVX2", "AVX512F"}, {"avx512f"}) == "avx2"  # Skylake-SP: no VNNI
    assert _classify(monkeypatch, {"SSE2", "AVX2"}, {"avx2", "avx_vnni"}) == "avx_vnni"  # Alder Lake
    # Under QEMU the program's CPUID says AVX2 while /proc/cpuinfo lists the host's AVX-512 and VNNI flags.
    assert _classify(monkeypatch, {"SSE2", "AVX2"}, {"avx2", "avx512f", "avx_vnni"}) == "avx2"
    assert _classify(monkeypatch, {"SSE2", "SSE41"}, set()) == "x86-64 without AVX2"
    assert _classify(monkeypatch, {"NEON", "ASIMD"}, set()) not in hardware.DESCRIPTIONS  # the machine's name
    assert hardware.describe_cpu_class("avx2") == "AVX2 without VNNI"


@pytest.fixture(scope="module")
def int8_engines(exported_onnx: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("int8-cpu")
    calibration = calibration_from_samples(make_phantom_dataset(32, seed=11, size=(SIZE, SIZE)), SIZE, 32, "phantom")
    engines = {}
    for name, scheme in SCHEMES.items():
        engines[name] = folder / f"{name}.onnx"
        quantize_int8(exported_onnx, engines[name], calibration, scheme)
    return engines


def test_exact_products_are_asked_for_only_where_the_cpu_lacks_vnni() -> None:
    """A VNNI CPU's kernels are exact as they are; asking for the exact path there halved the INT8 speed."""
    from cosa_edge.engines.int8_arithmetic import onnxruntime_session_entries

    for scheme in SCHEMES:
        record = {"scheme": {"name": scheme}}
        assert onnxruntime_session_entries(record, "avx2")["session.x64quantprecision"] == "1"
        assert onnxruntime_session_entries(record, "x86-64 without AVX2")["session.x64quantprecision"] == "1"
        for vnni in ("avx512_vnni", "avx_vnni", "aarch64"):
            assert "session.x64quantprecision" not in onnxruntime_session_entries(record, vnni)


def test_each_int8_graph_opens_with_the_arithmetic_that_does_not_depend_on_the_cpu(int8_engines: dict) -> None:
    saturating = hardware.cpu_class() in ("avx2", "x86-64 without AVX2")
    for name, path in int8_engines.items():
        with open_engine(path) as engine:
            options = engine.session.get_session_options()
            if saturating:
                assert options.get_session_config_entry("session.x64quantprecision") == "1"
            else:  # this CPU's 8-bit products are exact without it
                with pytest.raises(RuntimeError):  # ONNX Runtime: "SessionOptions does not have configuration with key"
                    options.get_session_config_entry("session.x64quantprecision")
            if name == "tensorrt":  # TensorRT's arithmetic: Q/DQ in float, never this CPU's 8-bit kernels
                assert options.get_session_config_entry("session.disable_quant_qdq") == "1"
            else:
                with pytest.raises(RuntimeError):  # ONNX Runtime: "SessionOptions does not have configuration with key"
                    options.get_session_config_entry("session.disable_quant_qdq")


def test_an_int8_engine_records_the_cpu_class_of_its_check_and_warns_on_another(
        exported_onnx: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calibration = calibration_from_samples(make_phantom_dataset(32, seed=11, size=(SIZE, SIZE)), SIZE, 32, "phantom")
    held_out = make_phantom_dataset(16, seed=23, size=(SIZE, SIZE))
    built = {}
    for target in ("onnxruntime", "tensorrt"):
        built[target] = build_engine(exported_onnx, tmp_path / f"{target}.onnx", target=target, precision="int8",
                                     int8=Int8Recipe(calibration, list(held_out), "phantoms", "minmax",
                                                     accept_accuracy_loss=True))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # opened on the class it was checked on: no warning
        with open_engine(built["onnxruntime"].engine) as engine:
            check = engine.metadata.quantization["check"]
    assert check["cpu_class"] == hardware.cpu_class()
    assert "x64quantprecision" in check["arithmetic"]
    other = "avx2" if hardware.cpu_class() != "avx2" else "avx512_vnni"
    monkeypatch.setattr("cosa_edge.engines.int8_arithmetic.cpu_class", lambda: other)
    with pytest.warns(CosaEdgeWarning, match=f"checked against the FP32 model on a CPU with .*this one has "
                                             f"{hardware.describe_cpu_class(other)}"):
        open_engine(built["onnxruntime"].engine).close()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # TensorRT's graph: its check computed in float, not with this CPU's kernels
        with open_engine(built["tensorrt"].engine) as engine:
            assert "disable_quant_qdq" in engine.metadata.quantization["check"]["arithmetic"]


def test_bench_reports_record_the_cpu_flags() -> None:
    from cosa_edge.bench.report import markdown_report
    from cosa_edge.bench.system import system_info

    system = system_info()
    assert system["cpu_class"] == hardware.cpu_class() and "SSE2" in system["cpu_flags"]
    assert hardware.describe_cpu_class(system["cpu_class"]) in markdown_report([], system, None, None)


@pytest.mark.skipif(shutil.which("qemu-x86_64") is None,
                    reason="QEMU's user mode emulates the AVX2-only CPU: apt-get install qemu-user (.ci/run does)")
def test_int8_engines_agree_with_fp32_on_an_emulated_avx2_cpu_without_vnni(int8_engines: dict,
                                                                          exported_onnx: Path) -> None:
    command = ["qemu-x86_64", "-cpu", EMULATED_CPU, sys.executable, str(REPO / "tests" / "avx2_probe.py"),
               str(exported_onnx), *map(str, int8_engines.values())]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]
    emulated = json.loads(done.stdout.strip().splitlines()[-1])
    # The emulation is real: ONNX Runtime in it sees AVX2 and no AVX-512 or VNNI.
    assert emulated["cpu_class"] == "avx2" and not any(f.startswith("AVX512") for f in emulated["cpu_features"])
    held_out = make_phantom_dataset(16, seed=23, size=(SIZE, SIZE))
    with open_engine(exported_onnx) as reference:
        for name, path in int8_engines.items():
            figures = emulated["engines"][str(path)]
            # The margins of test_int8.py's check on this machine's own CPU, now on the AVX2 one. With ONNX
            # Runtime's default session TensorRT's graph fell to 0.85 mask agreement there (16-bit saturation).
            assert figures["class_flips"] <= 1 and figures["presence_flips"] <= 1, (name, figures)
            assert figures["mask_dice_agreement"] > 0.95, (name, figures)
            assert figures["max_probability_difference"] < 0.2, (name, figures)
            with open_engine(path) as candidate:
                native = compare_to_reference(reference, candidate, held_out)
            assert figures["session_entries"]["session.x64quantprecision"] == "1", figures  # asked for there
            # With exact products the two CPUs' INT8 engines agree with FP32 alike.
            assert abs(native.mask_dice_agreement - figures["mask_dice_agreement"]) < 0.01, (name, figures)
            assert np.isclose(native.max_probability_difference, figures["max_probability_difference"], atol=0.01)
