"""Streaming inference on ultrasound video: sources, the pipelined loop, overlays, writers (numpy + OpenCV)."""
