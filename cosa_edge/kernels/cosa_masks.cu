// COSA region maps in one fused kernel: segmentation scores (N, 2, H, W) -> region fractions
// (N, 3, h, w) on the C5 grid, channels background / tumour / margin.
//
// The specification is cosa_edge/kernels/reference.py; this kernel follows it step by step and
// must agree with it exactly (every step is integer arithmetic on 0/1 masks):
//   lesion  = scores[1] > scores[0]                  (ties are background)
//   contour = 3x3 Sobel of lesion != 0 in x or y     (border replicated)
//   margin  = 5x5 dilation of contour                (zero outside the image)
//   tumour  = lesion & !margin, background = !lesion & !margin
//   out     = fraction of each (H/h) x (W/w) cell in each region
//
// One block computes one output cell. It loads the cell's tile of the lesion mask with a 3-pixel
// halo into shared memory (1 for Sobel + 2 for the dilation), computes the contour on the tile
// with a 2-pixel halo, then classifies and counts the tile's pixels.
//
// Parameter order is inputs, int32 scalars, outputs: the order TensorRT's ahead-of-time plugin
// path (tensorrt.plugin.aot_impl) passes them in.

#include <cuda_fp16.h>

#define COSA_MAX_TILE 64
#define COSA_HALO 3

namespace {

__device__ __forceinline__ float to_float(float v) { return v; }
__device__ __forceinline__ float to_float(__half v) { return __half2float(v); }
__device__ __forceinline__ int clamp_index(int v, int hi) { return v < 0 ? 0 : (v > hi ? hi : v); }

template <typename T>
__device__ void region_masks(const T* __restrict__ scores, int H, int W, int h, int w, float* __restrict__ out) {
    __shared__ unsigned char lesion[(COSA_MAX_TILE + 2 * COSA_HALO) * (COSA_MAX_TILE + 2 * COSA_HALO)];
    __shared__ unsigned char contour[(COSA_MAX_TILE + 4) * (COSA_MAX_TILE + 4)];
    __shared__ int counts[3];

    const int tile_h = H / h, tile_w = W / w;
    const int cell_x = blockIdx.x, cell_y = blockIdx.y, n = blockIdx.z;
    if (tile_h > COSA_MAX_TILE || tile_w > COSA_MAX_TILE || cell_x >= w || cell_y >= h) return;
    const int y0 = cell_y * tile_h, x0 = cell_x * tile_w;
    const T* background_score = scores + (size_t)n * 2 * H * W;
    const T* lesion_score = background_score + (size_t)H * W;
    // All three block dimensions count, so that no block shape runs a pixel twice.
    const int tid = (threadIdx.z * blockDim.y + threadIdx.y) * blockDim.x + threadIdx.x;
    const int threads = blockDim.x * blockDim.y * blockDim.z;
    // Strided, so that any block shape (even a single thread) zeroes all three counters.
    for (int r = tid; r < 3; r += threads) counts[r] = 0;

    // 1. Lesion mask of the tile plus halo; clamping the coordinates replicates the border.
    const int lh = tile_h + 2 * COSA_HALO, lw = tile_w + 2 * COSA_HALO;
    for (int i = tid; i < lh * lw; i += threads) {
        const int gy = clamp_index(y0 - COSA_HALO + i / lw, H - 1);
        const int gx = clamp_index(x0 - COSA_HALO + i % lw, W - 1);
        const size_t at = (size_t)gy * W + gx;
        lesion[i] = to_float(lesion_score[at]) > to_float(background_score[at]) ? 1 : 0;
    }
    __syncthreads();

    // 2. Contour on the tile plus 2 pixels; none outside the image, so dilation pads with zeros.
    const int ch = tile_h + 4, cw = tile_w + 4;
    for (int i = tid; i < ch * cw; i += threads) {
        const int cy = i / cw, cx = i % cw;
        const int gy = y0 - 2 + cy, gx = x0 - 2 + cx;
        unsigned char edge = 0;
        if (gy >= 0 && gy < H && gx >= 0 && gx < W) {
            const unsigned char* row_up = lesion + cy * lw + cx;  // lesion row gy - 1, column gx - 1
            const unsigned char* row = row_up + lw;
            const unsigned char* row_down = row + lw;
            const int sx = (row_up[2] + 2 * row[2] + row_down[2]) - (row_up[0] + 2 * row[0] + row_down[0]);
            const int sy = (row_down[0] + 2 * row_down[1] + row_down[2]) - (row_up[0] + 2 * row_up[1] + row_up[2]);
            edge = (sx != 0 || sy != 0) ? 1 : 0;
        }
        contour[i] = edge;
    }
    __syncthreads();

    // 3. Margin = any contour in the 5x5 window; classify and count the tile's pixels.
    int local[3] = {0, 0, 0};
    for (int i = tid; i < tile_h * tile_w; i += threads) {
        const int ty = i / tile_w, tx = i % tile_w;
        unsigned char margin = 0;
        for (int dy = 0; dy < 5; ++dy)
            for (int dx = 0; dx < 5; ++dx) margin |= contour[(ty + dy) * cw + tx + dx];
        const unsigned char inside = lesion[(ty + COSA_HALO) * lw + tx + COSA_HALO];
        local[margin ? 2 : (inside ? 1 : 0)] += 1;
    }
    for (int r = 0; r < 3; ++r)
        if (local[r]) atomicAdd(&counts[r], local[r]);
    __syncthreads();

    for (int r = tid; r < 3; r += threads) {
        // count / area: both exact in float, and IEEE division rounds once, as numpy's float64
        // mean cast to float32 does (double rounding is harmless for division).
        out[(((size_t)n * 3 + r) * h + cell_y) * w + cell_x] = (float)counts[r] / (float)(tile_h * tile_w);
    }
}

}  // namespace

extern "C" __global__ void cosa_region_masks_f32(const float* scores, int H, int W, int h, int w, float* out) {
    region_masks<float>(scores, H, W, h, w, out);
}

extern "C" __global__ void cosa_region_masks_f16(const __half* scores, int H, int W, int h, int w, float* out) {
    region_masks<__half>(scores, H, W, h, w, out);
}
