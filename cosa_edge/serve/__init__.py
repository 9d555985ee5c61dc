"""Serving beyond one machine: a Triton Inference Server model repository (``triton_repo``)."""
