"""CPU emulation of the CUDA kernel cosa_edge/kernels/cosa_masks.cu, for tests (see harness.py)."""

from .harness import (KernelLaunchError, build, gxx, half2float, kernel_source, run,
                      sanitizer_unavailable)

__all__ = ["KernelLaunchError", "build", "gxx", "half2float", "kernel_source", "run", "sanitizer_unavailable"]
