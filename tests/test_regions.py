"""The numpy reference of the COSA region maps (the spec) and the PyTorch op agree exactly."""

from __future__ import annotations

import numpy as np
import pytest

from cosa_edge.kernels.reference import area_average, region_maps, region_maps_full
from tests.masks import crafted_masks, disc, scores_for

torch = pytest.importorskip("torch")
from cosa_edge.model.regions import region_maps as torch_region_maps  # noqa: E402


@pytest.mark.parametrize("name", list(crafted_masks()))
def test_torch_op_equals_reference_on_crafted_masks(name: str) -> None:
    lesion = crafted_masks()[name]
    scores = scores_for(lesion)
    expected = region_maps(scores, grid=(8, 8))
    got = torch_region_maps(torch.from_numpy(scores)[None], grid=(8, 8))[0].numpy()
    np.testing.assert_array_equal(got, expected)


def test_torch_op_equals_reference_on_random_masks() -> None:
    rng = np.random.default_rng(1)
    scores = rng.standard_normal((4, 2, 96, 64)).astype(np.float32)
    expected = region_maps(scores, grid=(3, 2))
    got = torch_region_maps(torch.from_numpy(scores), grid=(3, 2)).numpy()
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("name", list(crafted_masks()))
def test_maps_are_disjoint_and_sum_to_one(name: str) -> None:
    full = region_maps_full(crafted_masks()[name])
    assert set(np.unique(full)) <= {0.0, 1.0}
    np.testing.assert_array_equal(full.sum(axis=0), 1.0)
    cells = area_average(full, (8, 8))
    np.testing.assert_allclose(cells.sum(axis=0), 1.0, atol=1e-6)


def test_empty_and_full_masks_have_no_margin() -> None:
    masks = crafted_masks()
    np.testing.assert_array_equal(region_maps_full(masks["empty"])[0], 1.0)
    # Replicate padding: a lesion covering the image has no contour along the image edge.
    np.testing.assert_array_equal(region_maps_full(masks["full"])[1], 1.0)


def test_no_false_contour_along_the_image_edge() -> None:
    lesion = crafted_masks()["touches_border"]  # rows 0..19, cols 10..39
    margin = region_maps_full(lesion)[2].astype(bool)
    # The lesion's own edges at row 19/20 and cols 9/10, 39/40 give a band; the image's top edge does not:
    # in the middle of the top row, far from the side edges, there is tumour and no margin.
    assert not margin[0, 15:35].any()
    assert margin[19, 20] and margin[21, 20]


def test_margin_band_is_five_pixels_wide_around_a_straight_edge() -> None:
    lesion = np.zeros((32, 32), bool)
    lesion[:, :16] = True  # vertical edge between columns 15 and 16
    maps = region_maps_full(lesion)
    margin_columns = np.flatnonzero(maps[2][10])
    # Sobel marks columns 15 and 16; a 5x5 dilation adds two columns on each side.
    assert list(margin_columns) == [13, 14, 15, 16, 17, 18]


def test_area_average_keeps_the_thin_margin_that_nearest_sampling_loses() -> None:
    lesion = disc(256, (128, 128), 60)
    full = region_maps_full(lesion)
    cells = area_average(full, (8, 8))
    assert cells[2].sum() * 32 * 32 == pytest.approx(full[2].sum())  # area is conserved
    nearest = full[:, 16::32, 16::32]  # what nearest-neighbour sampling to 8x8 would see
    assert cells[2].max() > 0 and nearest[2].sum() < cells[2].sum() * 0.5


def test_ties_are_background() -> None:
    scores = np.zeros((2, 32, 32), np.float32)
    np.testing.assert_array_equal(region_maps(scores, (1, 1))[:, 0, 0], [1.0, 0.0, 0.0])
    got = torch_region_maps(torch.zeros(1, 2, 32, 32), grid=(1, 1))[0, :, 0, 0].numpy()
    np.testing.assert_array_equal(got, [1.0, 0.0, 0.0])
