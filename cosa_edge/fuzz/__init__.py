"""Fuzzing cosa-edge's readers: each case run as a user runs it, in a process of its own (docs/fuzzing.md).

- :mod:`.outcomes`: how a case ended (a result, one clear error, a traceback, a crash, a hang, memory past
  the limit), judged from the exit status and what the process printed;
- :mod:`.runner`: runs a case's command line in a child process under a timeout and a memory limit, either
  forked from a process that has already imported cosa-edge (fast: the seeded test subset) or as a fresh
  ``python -m cosa_edge.cli`` (exactly as a user runs it);
- :mod:`.dicom_cases`: Hypothesis strategies that mutate DICOM files structurally (header values, sequences,
  fragments, transfer syntaxes) and at the byte level, from the sound files of :mod:`.dicom_bases`;
- :mod:`.byte_cases`: byte changes of real video, image, data-spec and engine files (ONNX metadata and OpenVINO
  sidecars changed as a writer would);
- :mod:`.cases`: the input kinds (a recipe strategy, the files, the command line) and the oracles beyond the
  exit status: no half-written output, no frames dropped without a note, no error in Python's own words;
- :mod:`.engine`: a tiny genuine ONNX engine, so that `cosa-edge infer` runs end to end without torch.

Hypothesis is a development dependency (the ``dev`` extra); it is imported only where strategies are built.
"""
