"""Run under an emulated CPU by tests/test_cpu_class.py: open INT8 engines as cosa-edge does and compare them with
the FP32 model on held-out phantoms; print the figures as JSON. Not a test module (no test_ prefix).

    qemu-x86_64 -cpu EPYC-Milan python tests/avx2_probe.py FP32.onnx INT8.onnx [INT8.onnx ...]
"""

from __future__ import annotations

import json
import sys
import warnings

from cosa_edge.data.phantom import make_phantom_dataset
from cosa_edge.backends import open_engine
from cosa_edge.evaluation.comparison import compare_to_reference
from cosa_edge.hardware import cpu_class, cpu_features


def config_entry(session, key: str) -> str | None:  # noqa: ANN001
    try:
        return session.get_session_options().get_session_config_entry(key)
    except Exception:  # ONNX Runtime raises where the entry was never set
        return None


def main() -> None:
    reference_path, *candidates = sys.argv[1:]
    with open_engine(reference_path) as reference:
        held_out = make_phantom_dataset(16, seed=23, size=(reference.input_size, reference.input_size))
        figures = {}
        for path in candidates:
            with warnings.catch_warnings(record=True) as caught, open_engine(path) as candidate:
                warnings.simplefilter("always")
                fidelity = compare_to_reference(reference, candidate, held_out)
                entries = {key: config_entry(candidate.session, key)
                           for key in ("session.x64quantprecision", "session.disable_quant_qdq")}
            figures[path] = {"class_flips": sum(fidelity.class_flips.values()),
                             "presence_flips": sum(fidelity.presence_flips.values()),
                             "mask_dice_agreement": fidelity.mask_dice_agreement,
                             "max_probability_difference": fidelity.max_probability_difference,
                             "session_entries": entries, "warnings": [str(w.message) for w in caught]}
    print(json.dumps({"cpu_class": cpu_class(), "cpu_features": list(cpu_features()), "engines": figures}))


if __name__ == "__main__":
    main()
