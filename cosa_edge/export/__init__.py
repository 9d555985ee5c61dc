"""The reference side of deployment (needs torch; onnx for export).

ONNX export of trained checkpoints with the engine contract (``onnx_export``),
the PyTorch eager engine that serves as the reference (``torch_engine``), and
the parity check of an export against it (``parity``). The runtime side
(cosa_edge.engines, stream, bench) never imports this package.
"""
