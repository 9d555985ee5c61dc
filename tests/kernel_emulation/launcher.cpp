// Host side of the CPU emulation of cosa_masks.cu: runs a launch grid block after block, and the
// CUDA threads of a block either
//   - as fibers (ucontext), deterministically: each thread runs alone until it reaches
//     __syncthreads() or returns, then the next one runs, in forward (0..T-1) or reverse order.
//     A missing barrier therefore gives the same wrong answer on every run; or
//   - as real std::threads meeting at a std::barrier, for ThreadSanitizer / AddressSanitizer.
// Exposed with extern "C" for ctypes (harness.py) and for driver.cpp (the sanitizer executable).
#include <atomic>
#include <barrier>
#include <cstdio>
#include <exception>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <ucontext.h>

#include "cuda_emulation.h"

thread_local uint3 threadIdx;
thread_local uint3 blockIdx;
thread_local dim3 blockDim;
thread_local dim3 gridDim;

// The kernel's entry points (cosa_masks.cu, compiled as a separate translation unit).
extern "C" void cosa_region_masks_f32(const float* scores, int H, int W, int h, int w, float* out);
extern "C" void cosa_region_masks_f16(const __half* scores, int H, int W, int h, int w, float* out);

namespace {

enum Mode { kFibers = 0, kThreads = 1 };

// Thrown out of __syncthreads() (threads mode) to unwind the threads of a block that went wrong.
struct BlockAborted {};

std::string g_error;                       // the first error of the current launch
std::function<void()> g_kernel;            // the launch being run: the kernel with its arguments
thread_local Mode t_mode = kFibers;        // how this OS thread's __syncthreads() must behave

uint3 thread_index(unsigned t, const dim3& block) {
    return {t % block.x, (t / block.x) % block.y, t / (block.x * block.y)};
}

std::string block_name(const uint3& b) {
    return "block (" + std::to_string(b.x) + ", " + std::to_string(b.y) + ", " + std::to_string(b.z) + ")";
}

// ---- fibers -----------------------------------------------------------------------------------

enum class State { kReady, kAtBarrier, kDone };

struct Fibers {
    ucontext_t scheduler{};
    std::vector<ucontext_t> contexts;
    std::vector<std::unique_ptr<char[]>> stacks;
    std::vector<State> states;
    unsigned current = 0;
};
Fibers* g_fibers = nullptr;
constexpr std::size_t kFiberStack = 128 * 1024;

void fiber_main() {
    g_kernel();
    g_fibers->states[g_fibers->current] = State::kDone;
    // Returning resumes uc_link, the scheduler.
}

void fiber_barrier() {
    Fibers& f = *g_fibers;
    f.states[f.current] = State::kAtBarrier;
    swapcontext(&f.contexts[f.current], &f.scheduler);
}

bool run_block_fibers(Fibers& f, unsigned threads, bool reverse) {
    for (unsigned t = 0; t < threads; ++t) {
        ucontext_t& c = f.contexts[t];
        getcontext(&c);
        c.uc_stack.ss_sp = f.stacks[t].get();
        c.uc_stack.ss_size = kFiberStack;
        c.uc_link = &f.scheduler;
        makecontext(&c, fiber_main, 0);
        f.states[t] = State::kReady;
    }
    for (unsigned phase = 0;; ++phase) {
        for (unsigned k = 0; k < threads; ++k) {
            const unsigned t = reverse ? threads - 1 - k : k;
            if (f.states[t] != State::kReady) continue;
            f.current = t;
            threadIdx = thread_index(t, blockDim);
            swapcontext(&f.scheduler, &f.contexts[t]);  // back when t reaches a barrier or returns
        }
        unsigned waiting = 0, done = 0;
        for (unsigned t = 0; t < threads; ++t) (f.states[t] == State::kDone ? done : waiting) += 1;
        if (waiting == 0) return true;
        if (done != 0) {  // the waiting fibers are abandoned; their stacks hold nothing to clean up
            g_error = block_name(blockIdx) + ": after barrier phase " + std::to_string(phase) + ", " +
                      std::to_string(waiting) + " threads wait at __syncthreads() but " + std::to_string(done) +
                      " have returned";
            return false;
        }
        for (unsigned t = 0; t < threads; ++t) f.states[t] = State::kReady;
    }
}

// ---- threads ----------------------------------------------------------------------------------

// std::barrier has no notion of an exited thread: a returning thread calls arrive_and_drop(), and
// the phase's completion step reports a mismatch when, in the same phase, some threads arrived at
// __syncthreads() while others returned.
struct ThreadBlock {
    std::atomic<unsigned> arrived{0};  // arrivals at __syncthreads() in the current phase
    std::atomic<unsigned> exited{0};   // threads that returned in the current phase
    std::atomic<bool> failed{false};
    std::string error;
    struct Completion {
        ThreadBlock* block;
        void operator()() noexcept {
            const unsigned arrived = block->arrived.exchange(0), exited = block->exited.exchange(0);
            if (arrived != 0 && exited != 0 && !block->failed.exchange(true))
                block->error = std::to_string(arrived) + " threads wait at __syncthreads() but " +
                               std::to_string(exited) + " have returned";
        }
    };
    std::barrier<Completion> barrier;
    explicit ThreadBlock(unsigned threads) : barrier(threads, Completion{this}) {}
};
thread_local ThreadBlock* t_block = nullptr;

void thread_barrier() {
    t_block->arrived.fetch_add(1);
    t_block->barrier.arrive_and_wait();
    if (t_block->failed.load()) throw BlockAborted{};
}

bool run_block_threads(unsigned threads, const uint3& block, const dim3& shape, const dim3& grid) {
    ThreadBlock tb(threads);
    std::vector<std::thread> pool;
    pool.reserve(threads);
    for (unsigned t = 0; t < threads; ++t) {
        pool.emplace_back([&tb, t, block, shape, grid] {
            t_mode = kThreads;
            t_block = &tb;
            threadIdx = thread_index(t, shape);
            blockIdx = block;
            blockDim = shape;
            gridDim = grid;
            try {
                g_kernel();
            } catch (const BlockAborted&) {
                return;  // the barrier was already left by the failing phase
            }
            tb.exited.fetch_add(1);
            tb.barrier.arrive_and_drop();
        });
    }
    for (std::thread& th : pool) th.join();
    if (tb.failed.load()) g_error = block_name(block) + ": " + tb.error;
    return !tb.failed.load();
}

// ---- launch -----------------------------------------------------------------------------------

int launch(const dim3& grid, const dim3& shape, bool reverse, Mode mode, char* error, int error_size) {
    const unsigned threads = shape.x * shape.y * shape.z;
    g_error.clear();
    if (threads == 0 || threads > 1024) g_error = "a block has 1 to 1024 threads, not " + std::to_string(threads);
    Fibers fibers;
    if (g_error.empty() && mode == kFibers) {
        fibers.contexts.resize(threads);
        fibers.states.resize(threads);
        for (unsigned t = 0; t < threads; ++t) fibers.stacks.emplace_back(new char[kFiberStack]);
        g_fibers = &fibers;
    }
    t_mode = mode;
    blockDim = shape;
    gridDim = grid;
    // Blocks in order, x fastest: each one sees the shared-memory leftovers of the one before.
    for (unsigned z = 0; z < grid.z && g_error.empty(); ++z)
        for (unsigned y = 0; y < grid.y && g_error.empty(); ++y)
            for (unsigned x = 0; x < grid.x && g_error.empty(); ++x) {
                blockIdx = {x, y, z};
                if (mode == kFibers) run_block_fibers(fibers, threads, reverse);
                else run_block_threads(threads, blockIdx, shape, grid);
            }
    g_fibers = nullptr;
    if (g_error.empty()) return 0;
    std::snprintf(error, static_cast<std::size_t>(error_size), "%s", g_error.c_str());
    return 1;
}

}  // namespace

void __syncthreads() {
    if (t_mode == kFibers) fiber_barrier();
    else thread_barrier();
}

// -fvisibility=hidden hides everything else, so that several of these libraries (one per kernel
// variant) can live in one Python process without their symbols interposing on each other.
#define EMU_EXPORT __attribute__((visibility("default")))

extern "C" {

// Runs cosa_region_masks_{f32,f16} on host memory with grid (w, h, N) and block (bx, by, bz), as
// the production launch does (cosa_edge/kernels/cuda.py). half_input: scores are binary16 bits.
// order: 0 forward, 1 reverse (fibers only). mode: 0 fibers, 1 threads. Returns 0, or 1 with a
// message in `error`.
EMU_EXPORT int emu_region_masks(int half_input, const void* scores, int N, int H, int W, int h, int w, float* out,
                                int bx, int by, int bz, int order, int mode, char* error, int error_size) {
    if (half_input) {
        const auto* s = static_cast<const __half*>(scores);
        g_kernel = [=] { cosa_region_masks_f16(s, H, W, h, w, out); };
    } else {
        const auto* s = static_cast<const float*>(scores);
        g_kernel = [=] { cosa_region_masks_f32(s, H, W, h, w, out); };
    }
    const dim3 grid{static_cast<unsigned>(w), static_cast<unsigned>(h), static_cast<unsigned>(N)};
    const dim3 shape{static_cast<unsigned>(bx), static_cast<unsigned>(by), static_cast<unsigned>(bz)};
    const int rc = launch(grid, shape, order != 0, mode == 1 ? kThreads : kFibers, error, error_size);
    g_kernel = nullptr;
    return rc;
}

// The emulated __half2float on n values, so that tests can check it against numpy on all 65536.
EMU_EXPORT void emu_half2float(const std::uint16_t* bits, float* out, int n) {
    for (int i = 0; i < n; ++i) out[i] = __half2float(__half{bits[i]});
}

}  // extern "C"
