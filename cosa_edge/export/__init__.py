"""ONNX export of trained checkpoints, with metadata and a parity check (needs torch and onnx)."""
