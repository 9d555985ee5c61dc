"""The CUDA kernel cosa_edge/kernels/cosa_masks.cu, run on the CPU and compared bit for bit with the
numpy specification (cosa_edge/kernels/reference.py), in the default suite, without a GPU.

What is real here:
  - the kernel's own source, unchanged (read from the package and compiled by g++ as C++);
  - its arithmetic (integer Sobel and dilation, float compare, count / area division in float32),
    its memory indexing (tiles, halos, border clamping, the strided loops over any block shape);
  - its use of shared memory, including reuse across blocks: ``__shared__`` arrays are static, so
    each block starts with the leftovers of the block before, as uninitialised shared memory does;
  - its barrier placement: threads are fibers that each run alone until ``__syncthreads()``, in a
    fixed forward or reverse order, so a missing barrier gives a wrong answer on every run (the
    mutation tests below show that each barrier matters), and a barrier some threads skip is an
    error, not a hang.

What is emulated (tests/kernel_emulation/):
  - the CUDA built-ins (``__global__``, ``threadIdx``, ``__syncthreads``, ``atomicAdd``, ``__half``,
    ``__half2float``) and the scheduler: no warps, no lock-step execution, no real GPU memory model
    (no caches, banks, visibility delays or real concurrency in fibers mode; the threads mode runs
    real OS threads, under AddressSanitizer/UBSan and ThreadSanitizer here);
  - half precision only as exact binary16 -> binary32 conversion (checked on all 65536 values): the
    kernel does no half arithmetic, and no half hardware is involved;
  - the host compiler's code generation, not nvcc's/ptxas's: an nvcc-only bug (or a miscompile)
    would not show here; tests/test_kernel.py covers nvcc and a real GPU where one exists.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from cosa_edge.kernels.cuda import BLOCK
from cosa_edge.kernels.reference import region_maps
from tests.kernel_emulation import KernelLaunchError, gxx, half2float, kernel_source, run, sanitizer_unavailable
from tests.masks import crafted_masks, disc, scores_for

pytestmark = pytest.mark.skipif(gxx() is None, reason="g++ is not on PATH: it compiles the CPU emulation of "
                                                      "the CUDA kernel (apt-get install g++)")

ORDERS = ("forward", "reverse")
BLOCKS = [BLOCK, (1, 1, 1), (2, 1, 1), (3, 1, 1), (32, 1, 1), (7, 5, 1), (4, 4, 2)]


# ---- inputs ---------------------------------------------------------------------------------------

def tie_scores(size: int = 64) -> np.ndarray:
    """A disc of lesion (scores 2 > 1), a disc of exact ties (1 == 1, background), background elsewhere."""
    lesion = disc(size, (size // 3, size // 3), size // 6)
    tie = disc(size, (size * 2 // 3, size * 2 // 3), size // 5)
    return np.stack([np.ones((size, size)), np.where(lesion, 2.0, np.where(tie, 1.0, 0.0))]).astype(np.float32)


def smooth_scores(rng: np.random.Generator, n: int, height: int, width: int, sigma: float = 4.0) -> np.ndarray:
    """Gaussian-blurred noise: lesions of a few blobs with irregular edges."""
    noise = rng.standard_normal((n, 2, height, width)).astype(np.float32)
    return np.stack([np.stack([cv2.GaussianBlur(c, (0, 0), sigma) for c in image]) for image in noise])


def mixed_batch(size: int = 64, seed: int = 0) -> np.ndarray:
    """Crafted masks, ties, smooth blobs and pixel noise in one (N, 2, size, size) float32 batch."""
    rng = np.random.default_rng(seed)
    crafted = [scores_for(m) for m in crafted_masks(size).values()]
    return np.concatenate([np.stack([*crafted, tie_scores(size)]), smooth_scores(rng, 2, size, size),
                           rng.standard_normal((1, 2, size, size)).astype(np.float32)])


def check(scores: np.ndarray, cells: tuple[int, int], **launch: object) -> None:
    """The emulated kernel equals the reference exactly (fp16 scores: the reference sees them as float32)."""
    expected = region_maps(scores.astype(np.float32), cells)
    np.testing.assert_array_equal(run(scores, cells, **launch), expected)


# ---- the kernel equals the reference --------------------------------------------------------------

def test_half2float_is_exact_for_every_half() -> None:
    bits = np.arange(1 << 16, dtype=np.uint16)
    expected = bits.view(np.float16).astype(np.float32)
    np.testing.assert_array_equal(half2float(bits).view(np.uint32), expected.view(np.uint32))  # NaN payloads too


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("name", [*crafted_masks(), "ties"])
def test_crafted_masks(name: str, dtype: type, order: str) -> None:
    scores = tie_scores() if name == "ties" else scores_for(crafted_masks()[name])
    check(scores[None].astype(dtype), (8, 8), block=BLOCK, order=order)


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_random_smooth_and_noisy_scores(dtype: type) -> None:
    rng = np.random.default_rng(1)
    smooth = smooth_scores(rng, 3, 64, 64)
    noise = rng.standard_normal((2, 2, 64, 64)).astype(np.float32)
    for scores in (smooth, noise):
        for order in ORDERS:
            check(scores.astype(dtype), (8, 8), order=order)


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("block", BLOCKS, ids=lambda b: "x".join(map(str, b)))
def test_block_shapes(block: tuple[int, int, int], order: str) -> None:
    check(mixed_batch(), (8, 8), block=block, order=order)


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize(("shape", "cells"), [
    ((12, 12), (12, 12)),  # 1-pixel tiles: every pixel its own block, all of it halo
    ((24, 24), (8, 8)),  # 3
    ((64, 64), (8, 8)),  # 8
    ((64, 64), (2, 2)),  # 32
    ((128, 128), (2, 2)),  # 64 = COSA_MAX_TILE, the largest the kernel handles
    ((64, 128), (8, 8)),  # 8 x 16, non-square
    ((64, 64), (4, 16)),  # 16 x 4
    ((48, 80), (6, 10)),  # 8 x 8 on a non-square grid
], ids=lambda v: "x".join(map(str, v)))
def test_tile_sizes(shape: tuple[int, int], cells: tuple[int, int], order: str) -> None:
    height, width = shape
    rng = np.random.default_rng(height * 1000 + width)
    lesion = np.zeros((height, width), bool)
    lesion[height // 4: height // 2, width // 3: width * 3 // 4] = True
    scores = np.concatenate([scores_for(lesion)[None], smooth_scores(rng, 1, height, width, sigma=3.0)])
    check(scores, cells, order=order)
    check(scores.astype(np.float16), cells, order=order)


def test_fp16_near_ties() -> None:
    """Scores one fp16 ulp apart either way, and exactly equal, at normal, subnormal and large scales."""
    rng = np.random.default_rng(2)
    base = smooth_scores(rng, 3, 64, 64)[:, 0] * np.array([1.0, 1e-5, 1e3], np.float32)[:, None, None]
    base16 = base.astype(np.float16)
    assert (np.abs(base16[1]) < np.float16(6.1e-5)).all()  # the second image is all subnormal in fp16
    direction = np.sign(np.round(smooth_scores(rng, 3, 64, 64, sigma=3.0)[:, 0] * 3))  # -1 / 0 / +1 in blobs
    towards = np.where(direction > 0, np.float16(np.inf), np.float16(-np.inf))
    lesion16 = np.where(direction == 0, base16, np.nextafter(base16, towards))
    scores = np.stack([base16, lesion16], axis=1)
    expected = region_maps(scores.astype(np.float32), (8, 8))
    assert (expected[:, 1] > 0).any() and (expected[:, 0] > 0).any()  # both lesion and background (ties)
    for order in ORDERS:
        np.testing.assert_array_equal(run(scores, (8, 8), order=order), expected)


def test_fp16_rounding_happens_before_the_kernel() -> None:
    """Scores apart in fp32 but equal in fp16 are ties (background) for the fp16 kernel."""
    rng = np.random.default_rng(3)
    base = np.abs(smooth_scores(rng, 2, 64, 64)[:, 0]) + 0.5
    base16 = base.astype(np.float16).astype(np.float32)  # on the fp16 grid, so a tiny step rounds back to it
    lesion = np.where(smooth_scores(rng, 2, 64, 64)[:, 0] > 0, base16 * np.float32(1 + 2**-14), base16)
    scores32 = np.stack([base16, lesion], axis=1).astype(np.float32)
    scores16 = scores32.astype(np.float16)
    expected16 = region_maps(scores16.astype(np.float32), (8, 8))
    assert not np.array_equal(expected16, region_maps(scores32, (8, 8)))  # the input does tell the two apart
    np.testing.assert_array_equal(run(scores16, (8, 8)), expected16)
    np.testing.assert_array_equal(run(scores32, (8, 8)), region_maps(scores32, (8, 8)))


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_non_finite_scores(dtype: type) -> None:
    """NaN compares false (background); infinities compare as numbers, and inf == inf is a tie."""
    scores = scores_for(np.zeros((32, 32), bool))
    scores[1][disc(32, (8, 8), 5)] = np.nan
    scores[0][disc(32, (8, 24), 5)] = np.nan
    scores[1][disc(32, (24, 8), 5)] = np.inf
    scores[:, disc(32, (24, 24), 5)] = np.inf
    scores[0, 28:, :4] = -np.inf
    expected = region_maps(scores[None], (4, 4))
    assert (expected[0, 1] > 0).any()  # the +inf disc is lesion, the rest background or margin
    check(scores[None].astype(dtype), (4, 4))


def test_threads_mode() -> None:
    scores = mixed_batch(32)
    for block in ((4, 4, 1), (3, 1, 1), (2, 2, 2)):
        check(scores, (4, 4), block=block, mode="threads")


def test_cells_over_the_tile_limit_are_not_written() -> None:
    """Documents the kernel's silent limit: with cells of more than COSA_MAX_TILE (64) pixels every
    block returns at once and the output keeps whatever it held (NaN here). launch_geometry() in
    cosa_edge/kernels/cuda.py refuses such launches; the reference has no such limit."""
    scores = scores_for(disc(130, (65, 65), 30))[None]
    assert np.isnan(run(scores, (2, 2))).all()
    assert np.isnan(run(scores, (1, 2))).all()  # 130 x 65: one side over the limit is enough


# ---- mutation tests: the harness can fail --------------------------------------------------------

def mutate(source: str, *replacements: tuple[str, str]) -> str:
    for old, new in replacements:
        assert source.count(old) == 1, f"expected exactly one {old!r} in the kernel"
        source = source.replace(old, new)
    return source


# The three barriers, each named by the text around it (asserted unique by mutate()).
SYNC_AFTER_LESION = ("    }\n    __syncthreads();\n\n    // 2.", "    }\n\n    // 2.")
SYNC_AFTER_CONTOUR = ("    }\n    __syncthreads();\n\n    // 3.", "    }\n\n    // 3.")
SYNC_AFTER_COUNTS = ("atomicAdd(&counts[r], local[r]);\n    __syncthreads();", "atomicAdd(&counts[r], local[r]);")
MUTANTS: dict[str, tuple[tuple[str, str], ...]] = {
    "ties_are_lesion": (("to_float(lesion_score[at]) > to_float(background_score[at])",
                         "to_float(lesion_score[at]) >= to_float(background_score[at])"),),
    "dilation_3x3": (("dy < 5", "dy < 3"), ("dx < 5", "dx < 3")),
    "no_sync_after_lesion": (SYNC_AFTER_LESION,),
    "no_sync_after_contour": (SYNC_AFTER_CONTOUR,),
    "no_sync_after_counts": (SYNC_AFTER_COUNTS,),
    # The defect the strided zeroing fixed: with fewer than 3 threads some counters are never
    # zeroed and carry the previous block's counts (static shared memory keeps them here).
    "counters_zeroed_by_first_three_threads": (("for (int r = tid; r < 3; r += threads) counts[r] = 0;",
                                                "if (tid < 3) counts[tid] = 0;"),),
}
SYNC_MUTANTS = ("no_sync_after_lesion", "no_sync_after_contour", "no_sync_after_counts")
ALL_BLOCKS = [BLOCK, (1, 1, 1), (2, 1, 1), (3, 1, 1), (7, 5, 1), (4, 4, 2)]


# mutant_input() has 8 x 8 cells: the lesion tile with its 3-pixel halo has 14 * 14 entries, the
# contour tile with its 2-pixel halo 12 * 12.
LESION_ENTRIES, CONTOUR_ENTRIES = 14 * 14, 12 * 12


def caught(mutant: str, block: tuple[int, int, int], order: str) -> bool:
    """Where each mutant must show, and why not elsewhere (the blind spots are asserted too)."""
    threads = block[0] * block[1] * block[2]
    if mutant in SYNC_MUTANTS:
        if threads == 1:
            return False  # one thread runs the block's steps in program order: no barrier needed
        # Reverse order is blind to a missing first or second barrier when every thread writes at
        # most one entry of the array that the next step reads (threads >= entries): entry i of the
        # next step reads only entries >= i of that array, written by threads >= i, which reverse
        # order has already run. So the production block (256 threads) shows these two mutants in
        # forward order only with 8-pixel cells; forward order shows them with any block of 2+.
        if order == "reverse" and mutant == "no_sync_after_lesion":
            return threads < LESION_ENTRIES
        if order == "reverse" and mutant == "no_sync_after_contour":
            return threads < CONTOUR_ENTRIES
        return True  # no_sync_after_counts: a count is written before some threads have added, either order
    if mutant == "counters_zeroed_by_first_three_threads":
        return threads < 3  # three or more threads zero all three counters anyway
    return True  # wrong arithmetic: every block shape, every order


def mutant_input() -> np.ndarray:
    """Empty, full, lesions, ties and empty again, 32 x 32 in 8 x 8 cells. Consecutive images leave
    opposite shared-memory leftovers (lesion everywhere / nowhere), so a block that reads a tile
    entry before it is written this block reads a wrong value, whatever the run before left behind."""
    masks = crafted_masks(32)
    return np.stack([scores_for(masks["empty"]), scores_for(masks["full"]), scores_for(masks["two_lesions"]),
                     tie_scores(32), scores_for(masks["touches_border"]), scores_for(masks["empty"])])


def test_mutations_apply_to_the_kernel_as_it_is() -> None:
    source = kernel_source()
    assert source.count("__syncthreads();") == 3  # a new barrier needs its own mutant
    for replacements in MUTANTS.values():
        mutate(source, *replacements)


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("block", ALL_BLOCKS, ids=lambda b: "x".join(map(str, b)))
@pytest.mark.parametrize("mutant", list(MUTANTS))
def test_mutant(mutant: str, block: tuple[int, int, int], order: str) -> None:
    scores = mutant_input()
    expected = region_maps(scores, (4, 4))
    got = run(scores, (4, 4), block=block, order=order, source=mutate(kernel_source(), *MUTANTS[mutant]))
    if caught(mutant, block, order):
        assert not np.array_equal(got, expected), f"{mutant} went unnoticed with block {block}, {order} order"
    else:  # documents the blind spot: this block shape cannot show this mutant
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("mode", ["fibers", "threads"])
def test_a_barrier_some_threads_skip_is_an_error(mode: str) -> None:
    source = mutate(kernel_source(), ("const int threads = blockDim.x * blockDim.y * blockDim.z;",
                                      "const int threads = blockDim.x * blockDim.y * blockDim.z;\n"
                                      "    if (tid == threads - 1) return;"))
    for order in ORDERS if mode == "fibers" else ("forward",):
        with pytest.raises(KernelLaunchError, match=r"block \(0, 0, 0\).* at __syncthreads\(\) but 1 have returned"):
            run(mutant_input(), (4, 4), block=(4, 1, 1), order=order, mode=mode, source=source)


# ---- sanitizers (threads mode: real OS threads) -------------------------------------------------

@pytest.mark.parametrize("sanitizer", ["address", "thread"])
def test_under_sanitizer(sanitizer: str) -> None:
    reason = sanitizer_unavailable(sanitizer)
    if reason:
        pytest.skip(reason)
    # Small: a sanitized OS thread per CUDA thread per block is slow to start (ThreadSanitizer most).
    scores = mixed_batch(32)[[1, 4, 7, 10]]  # full, two lesions, ties, noise; 16-pixel cells
    check(scores, (2, 2), block=(8, 4, 1), mode="threads", sanitizer=sanitizer)
    check(scores.astype(np.float16), (2, 2), block=(4, 2, 2), mode="threads", sanitizer=sanitizer)


def test_thread_sanitizer_sees_a_missing_barrier() -> None:
    """The sanitizer run can fail: without the first barrier, threads read lesion bytes that others
    write with no synchronisation in between, which ThreadSanitizer reports as a data race."""
    reason = sanitizer_unavailable("thread")
    if reason:
        pytest.skip(reason)
    with pytest.raises(KernelLaunchError, match="ThreadSanitizer: data race"):
        run(mutant_input(), (4, 4), block=(8, 4, 1), mode="threads", sanitizer="thread",
            source=mutate(kernel_source(), SYNC_AFTER_LESION))
