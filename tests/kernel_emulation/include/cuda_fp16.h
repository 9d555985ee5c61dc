// Found by the kernel's `#include <cuda_fp16.h>` when compiled with -I tests/kernel_emulation/include:
// __half and __half2float come from the emulation header instead of the CUDA toolkit.
#pragma once
#include "cuda_emulation.h"
