// A standalone executable around launcher.cpp, for the sanitizer runs: a sanitizer runtime must
// be loaded first in its process, which a Python process loading a ctypes library cannot do.
// Usage: driver HALF N H W h w BX BY BZ ORDER MODE SCORES_IN OUT
//   SCORES_IN: raw float32 (HALF=0) or binary16 (HALF=1) scores, (N, 2, H, W);
//   OUT: written with raw float32 (N, 3, h, w). Exit status 0, or 1 with the error on stderr.
#include <cstdio>
#include <cstdlib>
#include <vector>

extern "C" int emu_region_masks(int half_input, const void* scores, int N, int H, int W, int h, int w, float* out,
                                int bx, int by, int bz, int order, int mode, char* error, int error_size);

int main(int argc, char** argv) {
    if (argc != 14) {
        std::fprintf(stderr, "usage: %s HALF N H W h w BX BY BZ ORDER MODE SCORES_IN OUT\n", argv[0]);
        return 2;
    }
    int a[11];
    for (int i = 0; i < 11; ++i) a[i] = std::atoi(argv[i + 1]);
    const int half = a[0], N = a[1], H = a[2], W = a[3], h = a[4], w = a[5];
    const std::size_t in_bytes = static_cast<std::size_t>(N) * 2 * H * W * (half ? 2 : 4);
    std::vector<unsigned char> scores(in_bytes);
    std::vector<float> out(static_cast<std::size_t>(N) * 3 * h * w, 0.0f);
    std::FILE* in = std::fopen(argv[12], "rb");
    if (in == nullptr || std::fread(scores.data(), 1, in_bytes, in) != in_bytes) {
        std::fprintf(stderr, "cannot read %zu bytes from %s\n", in_bytes, argv[12]);
        return 2;
    }
    std::fclose(in);
    char error[512] = "";
    if (emu_region_masks(half, scores.data(), N, H, W, h, w, out.data(), a[6], a[7], a[8], a[9], a[10], error,
                         sizeof error) != 0) {
        std::fprintf(stderr, "%s\n", error);
        return 1;
    }
    std::FILE* o = std::fopen(argv[13], "wb");
    if (o == nullptr || std::fwrite(out.data(), sizeof(float), out.size(), o) != out.size()) return 2;
    std::fclose(o);
    return 0;
}
