"""How INT8 graphs compute on a CPU: the ONNX Runtime session entries cosa-edge runs them with, and the CPU
class their accuracy check ran on.

Apart from :mod:`cosa_edge.engines.int8` (the quantizer, which reads data sets) so that opening an engine needs
only numpy: a Triton server's Python environment has no OpenCV.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from ..contract import ModelMetadata
from ..errors import CosaEdgeWarning
from ..hardware import AVX2, X86_OLDER, cpu_class, describe_cpu_class

#: The INT8 schemes' names, as engines' metadata records them (quantization.scheme.name). Each names the runtime
#: it was made for: unsigned asymmetric activations for ONNX Runtime (and OpenVINO), signed symmetric for TensorRT.
ASYMMETRIC_SCHEME = "onnxruntime"
SYMMETRIC_SCHEME = "tensorrt"

#: ONNX Runtime's session entries: exact U8U8 products on x86 CPUs without VNNI, and Q/DQ computed in float
#: instead of fused into 8-bit kernels.
EXACT_X86_PRODUCTS = ("session.x64quantprecision", "1")
QDQ_IN_FLOAT = ("session.disable_quant_qdq", "1")
#: The CPU classes whose 8-bit products saturate without EXACT_X86_PRODUCTS (AVX2's 16-bit pairwise sums). A VNNI
#: CPU's kernels are exact as they are, and there the entry would only halve the speed: measured on the 2-core
#: AVX-512 VNNI EPYC, the edge model's INT8 engine at 256 px took 31.6 ms with it and 15.6 ms without, with the
#: same outputs to the bit (docs/deployment.md, "INT8 on CPUs without VNNI").
SATURATING_CLASSES = (AVX2, X86_OLDER)


def scheme_name(quantization: dict[str, Any]) -> str | None:
    """The scheme an INT8 model's metadata names (onnxruntime, tensorrt), or None for a float model."""
    return (quantization.get("scheme") or {}).get("name")


def onnxruntime_session_entries(quantization: dict[str, Any], cpu: str | None = None) -> dict[str, str]:
    """How ONNX Runtime runs a model with this quantization record on this CPU class (``cpu``, default: this
    machine's), so that it computes alike on every x86 CPU.

    TensorRT's graph runs as TensorRT computes it (Q/DQ in float: the check of a TensorRT engine must not
    depend on the checking CPU's 8-bit kernels); every other graph with exact 8-bit products, which a CPU without
    VNNI computes only when asked to.
    """
    entries = dict([EXACT_X86_PRODUCTS]) if (cpu or cpu_class()) in SATURATING_CLASSES else {}
    if scheme_name(quantization) == SYMMETRIC_SCHEME:
        entries.update([QDQ_IN_FLOAT])
    return entries


def arithmetic(quantization: dict[str, Any]) -> str:
    """The arithmetic :func:`onnxruntime_session_entries` gives, in words, for the metadata of a check."""
    if scheme_name(quantization) == SYMMETRIC_SCHEME:
        return "TensorRT's: quantize and dequantize in float (ONNX Runtime's session.disable_quant_qdq)"
    return "ONNX Runtime's 8-bit kernels, exact U8U8 products where the CPU has no VNNI (session.x64quantprecision)"


def warn_if_checked_on_another_cpu(metadata: ModelMetadata, path: Path) -> None:
    """An INT8 CPU engine whose accuracy check ran on another CPU class than this one: say so, once, as a warning.

    With exact products the integer results match across classes (measured), but the FP32 layers around them
    and the kernels' float epilogues differ in rounding, so the check's figures describe the class it ran on.
    """
    check = metadata.quantization.get("check") or {}
    recorded = check.get("cpu_class")
    if metadata.precision != "int8" or not recorded or scheme_name(metadata.quantization) == SYMMETRIC_SCHEME:
        return
    here = cpu_class()
    if recorded != here:
        warnings.warn(f"{path.name} was checked against the FP32 model on a CPU with {describe_cpu_class(recorded)}; "
                      f"this one has {describe_cpu_class(here)}, whose 8-bit kernels differ: check it here with "
                      "`cosa-edge bench --engine ... --check-data SPEC` before relying on it", CosaEdgeWarning,
                      stacklevel=3)
