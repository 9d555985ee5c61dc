"""Training, evaluation and cross-validation (PyTorch; needs the ``train`` extra)."""
