// Stand-ins for the CUDA built-ins that cosa_edge/kernels/cosa_masks.cu uses, so that its
// unchanged source compiles as C++ (g++ -x c++ -include cuda_emulation.h) and runs on the CPU
// under the launcher in ../launcher.cpp. Test-only: nothing here models warps, the GPU memory
// model or half-precision arithmetic; it models what the kernel relies on and no more.
#pragma once

#include <cstdint>
#include <cstring>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
// One static array per kernel instantiation: every thread of a block sees the same storage, and
// as blocks run one after another a block starts with the previous block's leftovers, as real
// (uninitialised) shared memory does. Only the first block of a process sees zeros.
#define __shared__ static

struct uint3 {
    unsigned int x, y, z;
};
using dim3 = uint3;

// Set by the launcher: per OS thread (threads mode), or switched before each fiber resumes
// (fibers mode, where every CUDA thread of a block runs on the caller's OS thread).
extern thread_local uint3 threadIdx;
extern thread_local uint3 blockIdx;
extern thread_local dim3 blockDim;
extern thread_local dim3 gridDim;

// Suspends the calling CUDA thread until every thread of its block has reached a barrier
// (launcher.cpp). A barrier that some threads never reach is reported as an error, not hung on.
void __syncthreads();

__device__ __forceinline__ int atomicAdd(int* address, int value) {
    return __atomic_fetch_add(address, value, __ATOMIC_SEQ_CST);
}

// IEEE binary16, stored as its bits; the launcher hands the kernel the caller's raw uint16 data.
struct __half {
    std::uint16_t x;
};
static_assert(sizeof(__half) == 2, "__half must have the layout of a uint16 array element");

// Exact binary16 -> binary32 conversion (every half is a float): normals, subnormals, zeros,
// infinities and NaNs (payload kept, as the hardware's cvt.f32.f16 does).
__device__ __forceinline__ float __half2float(__half h) {
    const std::uint32_t sign = static_cast<std::uint32_t>(h.x & 0x8000u) << 16;
    const std::uint32_t exponent = (h.x >> 10) & 0x1fu;
    std::uint32_t mantissa = h.x & 0x3ffu;
    std::uint32_t bits;
    if (exponent == 0x1f) {
        bits = sign | 0x7f800000u | (mantissa << 13);
    } else if (exponent != 0) {
        bits = sign | ((exponent - 15 + 127) << 23) | (mantissa << 13);
    } else if (mantissa == 0) {
        bits = sign;
    } else {  // subnormal: mantissa * 2^-24; normalise it (shift the leading 1 up to bit 10)
        int e = -14;
        while ((mantissa & 0x400u) == 0) {
            mantissa <<= 1;
            --e;
        }
        bits = sign | static_cast<std::uint32_t>(e + 127) << 23 | ((mantissa & 0x3ffu) << 13);
    }
    float value;
    std::memcpy(&value, &bits, sizeof value);
    return value;
}
