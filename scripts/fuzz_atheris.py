"""Coverage-guided fuzzing of the DICOM reader with atheris (libFuzzer for Python), where atheris installs.

    pip install atheris            # a wheel for CPython 3.11 on x86-64 Linux; elsewhere it needs clang
    python scripts/fuzz_atheris.py -runs=20000 -seed=25 fuzz-findings/atheris-corpus

Where the Hypothesis campaign (scripts/fuzz_campaign.py) runs each case as `cosa-edge infer` in a process of its
own, this runs the reader in-process, millions of inputs an hour, steered by the lines each input reaches in
pydicom and cosa-edge's DICOM modules. An input ends well when the reader returns frames or raises CosaEdgeError
(one clear sentence); any other exception is a finding, and libFuzzer writes the input to ``crash-<sha1>`` in the
working folder (a native crash ends the run the same way). The corpus starts from the campaign's sound base files
(made-up phantoms; no patient data). libFuzzer's own flags (-runs, -seed, -max_total_time, -max_len) pass through.
"""

from __future__ import annotations

import sys
import tempfile
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

try:
    import atheris
except ImportError:
    raise SystemExit("atheris is not installed (pip install atheris; it has wheels for CPython 3.11 on x86-64 "
                     "Linux); the Hypothesis campaign, scripts/fuzz_campaign.py, needs only the dev extra") from None

with atheris.instrument_imports(include=["pydicom", "cosa_edge"]):
    from cosa_edge.data.dicom import DicomImage
    from cosa_edge.errors import CosaEdgeError
    from cosa_edge.fuzz.dicom_cases import BASES, write_dicom_case

#: Frames decoded per input at most: coverage comes from the first frames; a long cine would only slow the search.
MAX_FRAMES = 4
_CASE = Path(tempfile.mkdtemp(prefix="cosa-edge-atheris-")) / "case.dcm"


def test_one_input(data: bytes) -> None:
    _CASE.write_bytes(data)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            image = DicomImage(_CASE)
            for count, _ in enumerate(image.frames(), start=1):
                if count >= MAX_FRAMES:
                    break
    except CosaEdgeError:
        return  # one clear sentence: what the reader promises


def seed_corpus(folder: Path) -> None:
    """The sound base files, so that the search starts from real DICOM and not from random bytes."""
    folder.mkdir(parents=True, exist_ok=True)
    for base in BASES:
        target = folder / f"{base}.dcm"
        if not target.exists():
            write_dicom_case({"base": base}, target)


def main() -> None:
    corpora = [Path(arg) for arg in sys.argv[1:] if not arg.startswith("-")]
    for corpus in corpora:
        seed_corpus(corpus)
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
