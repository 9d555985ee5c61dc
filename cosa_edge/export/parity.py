"""Does the exported model say what the PyTorch model says? Checked at export and in the tests.

The comparison itself is the runtime side's (:mod:`cosa_edge.evaluation.comparison`);
what belongs here is the PyTorch reference it is compared against, and the
tighter tolerances of an FP32 export.
"""

from __future__ import annotations

from pathlib import Path

from ..data import Sample
from ..evaluation.comparison import Agreement, compare_engines
from ..evaluation.engine_outputs import frames_of
from ..errors import CosaEdgeError

PROBABILITY_TOLERANCE = 1e-4
MASK_AGREEMENT = 0.999


def check_export_parity(onnx_path: Path, checkpoint: Path, samples: list[Sample]) -> Agreement:
    """ONNX Runtime against PyTorch eager; raises if they disagree beyond the export tolerances."""
    from ..engines.onnxruntime_engine import OnnxRuntimeEngine
    from .torch_engine import TorchEngine

    with TorchEngine(checkpoint) as reference, OnnxRuntimeEngine(onnx_path) as candidate:
        agreement = compare_engines(reference, candidate, frames_of(samples, reference.input_size))
    if not agreement.passes(PROBABILITY_TOLERANCE, MASK_AGREEMENT):
        raise CosaEdgeError(f"the exported model disagrees with PyTorch: {agreement}; the export is not usable")
    return agreement
