"""'No lesion' is an answer: lesion-free images in the data, in training and scoring, and in every frame's output."""

from __future__ import annotations

import numpy as np
import pytest

from cosa_edge import NO_LESION
from cosa_edge.data.phantom import make_phantom, make_phantom_dataset
from cosa_edge.data.sample import Sample, class_counts
from cosa_edge.presence import (DEFAULT_MIN_LESION_SHARE, choose_min_lesion_share, lesion_present,
                                presence_metrics)
from cosa_edge.stream.overlay import draw_overlay, frame_label
from cosa_edge.stream.postprocess import ProbabilitySmoother, summarise


def test_lesion_free_samples_have_no_class_and_an_empty_mask() -> None:
    image = np.zeros((8, 8), np.uint8)
    normal = Sample("normal/1", image, np.zeros((8, 8), bool), NO_LESION)
    assert not normal.has_lesion and normal.class_name == "normal" and normal.stratum == 2
    with pytest.raises(ValueError, match="empty mask"):
        Sample("normal/2", image, np.ones((8, 8), bool), NO_LESION)
    assert class_counts([normal]) == {"benign": 0, "malignant": 0, "normal": 1}


def test_phantoms_can_be_lesion_free() -> None:
    samples = make_phantom_dataset(20, seed=3, size=(64, 64), normal_fraction=0.2)
    normals = [s for s in samples if not s.has_lesion]
    assert len(normals) == 4 and all(not s.mask.any() for s in normals)
    lesions = [s for s in samples if s.has_lesion]
    assert 0 < sum(s.label for s in lesions) < len(lesions)  # both classes among the lesions
    # Without normals the data set is what it always was (tests elsewhere depend on it).
    old = make_phantom_dataset(12, seed=3, size=(64, 64))
    assert [s.label for s in old] == [s.label for s in make_phantom_dataset(12, seed=3, size=(64, 64),
                                                                            normal_fraction=0)]
    healthy, sick = make_phantom(7, label=NO_LESION, size=(64, 64)), make_phantom(7, label=0, size=(64, 64))
    assert not healthy.mask.any() and sick.mask.any()


def test_busi_normal_images_are_read_on_request(busi_path) -> None:  # noqa: ANN001
    from cosa_edge.data.busi import load_busi

    with_normal = load_busi(busi_path, progress=False, include_normal=True)
    counts = class_counts(with_normal)
    assert counts == {"benign": 437, "malignant": 210, "normal": 133}
    assert all(not s.mask.any() for s in with_normal if not s.has_lesion)
    assert len(load_busi(busi_path, progress=False)) == 647  # left out by default, as in the paper


def test_threshold_keeps_95_percent_of_validation_lesions() -> None:
    lesion_shares = np.linspace(0.01, 0.20, 20)  # 20 lesions: one may be lost
    normal_shares = np.array([0.0, 0.0, 0.001, 0.004, 0.012, 0.03])
    chosen = choose_min_lesion_share([*lesion_shares, *normal_shares], [True] * 20 + [False] * 6)
    assert chosen["min_lesion_share"] == pytest.approx(0.02)  # the second-smallest lesion
    assert chosen["validation"]["sensitivity"] == pytest.approx(0.95)
    assert chosen["validation"]["specificity"] == pytest.approx(5 / 6)  # the 0.03 normal still reads as a lesion
    assert "validation: 20 lesion and 6 lesion-free images" in chosen["chosen_on"]


def test_without_lesion_free_validation_images_the_default_is_said_to_be_one() -> None:
    chosen = choose_min_lesion_share([0.1, 0.2], [True, True])
    assert chosen["min_lesion_share"] == DEFAULT_MIN_LESION_SHARE and chosen["chosen_on"].startswith("default")


def test_presence_metrics_and_empty_masks() -> None:
    metrics = presence_metrics([0.0, 0.05, 0.0, 0.001], [True, True, False, False], min_lesion_share=0.002)
    assert metrics["sensitivity"] == 0.5 and metrics["specificity"] == 1.0
    assert not lesion_present(0.0, 0.0)  # an empty mask is never a lesion, whatever the threshold


def _probability(size: int = 64, lesion: tuple[slice, slice] | None = (slice(20, 40), slice(20, 44))) -> np.ndarray:
    probability = np.zeros((size, size), np.float32)
    if lesion is not None:
        probability[lesion] = 0.9
    return probability


def test_a_frame_without_a_lesion_gets_no_class() -> None:
    roi = (0, 0, 64, 64)
    empty = summarise(0, 0.0, _probability(lesion=None), np.array([0.2, 0.8]), roi, 1.0)
    assert empty.status == "no_lesion" and empty.predicted == "" and empty.malignancy_score is None
    record = empty.record()
    assert record["status"] == "no_lesion"
    assert not {"class_probabilities", "predicted_class", "malignancy_score"} & set(record)
    speck = summarise(0, 0.0, _probability(lesion=(slice(5, 7), slice(5, 7))), np.array([0.2, 0.8]), roi, 1.0,
                      min_lesion_share=0.01)  # 4 pixels of 4096 is below 1%
    assert speck.status == "no_lesion" and speck.bbox is None
    lesion = summarise(0, 0.0, _probability(), np.array([0.2, 0.8]), roi, 1.0, min_lesion_share=0.01)
    assert lesion.status == "lesion" and lesion.predicted == "malignant"
    assert lesion.record()["malignancy_score"] == pytest.approx(0.8)


def test_smoothing_starts_afresh_after_a_frame_without_a_lesion() -> None:
    roi, smoother = (0, 0, 64, 64), ProbabilitySmoother(0.5)
    summarise(0, 0.0, _probability(), np.array([0.9, 0.1]), roi, 1.0, smoother)
    assert summarise(1, 0.0, _probability(lesion=None), np.array([0.9, 0.1]), roi, 1.0, smoother).smoothed is None
    after = summarise(2, 0.0, _probability(), np.array([0.1, 0.9]), roi, 1.0, smoother)
    assert after.smoothed == pytest.approx([0.1, 0.9])  # not pulled towards the benign frames before the gap


def test_a_lesion_reaching_the_side_of_the_view_gets_no_class() -> None:
    """Part of such a lesion (and of its margin, which COSA classifies from) is out of view: no verdict, a reason,
    and the smoother starts afresh, so the next judged frame is not averaged with what came before."""
    roi, smoother = (0, 0, 64, 64), ProbabilitySmoother(0.5)
    judged = summarise(0, 0.0, _probability(), np.array([0.9, 0.1]), roi, 1.0, smoother)
    assert judged.predicted == "benign" and judged.reason is None
    for side in ((slice(20, 40), slice(50, 64)), (slice(0, 10), slice(20, 40)), (slice(54, 64), slice(0, 64))):
        cut = summarise(1, 0.0, _probability(lesion=side), np.array([0.1, 0.9]), roi, 1.0, smoother)
        assert cut.status == "lesion" and cut.predicted == "" and cut.malignancy_score is None
        assert cut.reason == "lesion_partly_out_of_view" and cut.bbox is not None and cut.lesion_area_px > 0
        record = cut.record()
        assert record["reason"] == "lesion_partly_out_of_view" and "lesion_area_px" in record
        assert not {"class_probabilities", "predicted_class", "malignancy_score"} & set(record)
        assert frame_label(cut) == "lesion partly out of view: no verdict"
    after = summarise(2, 0.0, _probability(), np.array([0.1, 0.9]), roi, 1.0, smoother)
    assert after.smoothed == pytest.approx([0.1, 0.9]) and after.predicted == "malignant"
    # One pixel clear of the side is in view.
    assert summarise(3, 0.0, _probability(lesion=(slice(1, 63), slice(1, 63))), np.array([0.1, 0.9]), roi,
                     1.0).predicted == "malignant"


def test_the_overlay_says_no_lesion_or_a_malignancy_score_in_neutral_colours() -> None:
    roi, frame = (0, 0, 64, 64), np.full((64, 64), 100, np.uint8)
    empty = summarise(0, 0.0, _probability(lesion=None), np.array([0.2, 0.8]), roi, 1.0)
    lesion = summarise(0, 0.0, _probability(), np.array([0.9, 0.1]), roi, 1.0)
    assert frame_label(empty) == "no lesion"
    assert frame_label(lesion) == "lesion: malignancy score 0.10"
    for result in (empty, lesion):
        drawn = draw_overlay(frame, result, roi).astype(int)
        changed = drawn[(drawn != 100).any(axis=2)]
        # No pure-green or pure-red verdict colours: every drawn pixel is grey text/outline or the palette's.
        green = (changed[:, 1] > 150) & (changed[:, 0] < 100) & (changed[:, 2] < 100)
        red = (changed[:, 2] > 150) & (changed[:, 0] < 100) & (changed[:, 1] < 100)
        assert not green.any() and not red.any()


def test_the_overlay_text_fits_the_frame() -> None:
    """A small frame shows the whole verdict, shrunk, never cut off at the frame's side."""
    roi, frame = (0, 0, 200, 120), np.full((120, 200), 100, np.uint8)
    cut = summarise(0, 0.0, _probability(lesion=(slice(20, 40), slice(50, 64))), np.array([0.1, 0.9]), roi, 1.0)
    drawn = draw_overlay(frame, cut, roi).astype(int)
    text_rows = drawn[5:30]
    assert (text_rows[:, -8:] == 100).all()  # nothing written in the right margin: the text ended before it
    assert (text_rows[:, 8:60] != 100).any()


def test_the_demos_still_overlays_say_what_a_streamed_frame_would() -> None:
    """One rule for what is said: the demo's tiles give no verdict on a lesion cut by the side, as the stream."""
    from unittest import mock

    from cosa_edge.demo import overlay

    sample = make_phantom(7, label=1, size=(64, 64))
    cut = np.zeros((64, 64), bool)
    cut[20:40, 50:64] = True
    whole = np.zeros((64, 64), bool)
    whole[20:40, 20:44] = True
    said = []
    with mock.patch("cosa_edge.demo.cv2.putText", side_effect=lambda image, text, *a, **k: said.append(text)):
        overlay(sample, cut, np.array([0.1, 0.9]), 0.01)
        overlay(sample, whole, np.array([0.1, 0.9]), 0.01)
        overlay(sample, np.zeros((64, 64), bool), np.array([0.1, 0.9]), 0.01)
    assert said[0].startswith("lesion partly out of view: no verdict")
    assert said[2].startswith("lesion: malignancy score 0.90") and said[4].startswith("no lesion")


def test_a_lesion_whose_probability_runs_on_to_the_side_below_the_mask_threshold_gets_no_class() -> None:
    """At the side of the view a model's mask can stop short of a lesion that runs on out of view, while its
    probability stays raised up to the side (seen on the demo's models): the lesion's extent joins those pixels
    to the mask (hysteresis at EXTENT_THRESHOLD), so it is partly out of view. A faint haze along the sides of
    the frame, not joined to the lesion or below the threshold, changes nothing."""
    from cosa_edge.stream.postprocess import EXTENT_THRESHOLD

    roi = (0, 0, 64, 64)
    probability = np.full((64, 64), 0.02, np.float32)
    probability[20:40, 30:56] = 0.9  # the mask, 8 px clear of the right side
    probability[20:40, 56:] = EXTENT_THRESHOLD + 0.1  # the lesion's fainter part, out to the side
    cut = summarise(0, 0.0, probability, np.array([0.1, 0.9]), roi, 1.0)
    assert cut.reason == "lesion_partly_out_of_view" and cut.predicted == ""
    assert cut.lesion_area_px == 20 * 26  # the mask itself is still what is measured
    probability[20:40, 56:] = EXTENT_THRESHOLD - 0.1  # below the threshold: the lesion ends where its mask does
    assert summarise(1, 0.0, probability, np.array([0.1, 0.9]), roi, 1.0).predicted == "malignant"
    probability[:, 60:] = EXTENT_THRESHOLD + 0.1  # a band along the side, apart from the lesion
    probability[:, 56:60] = 0.02
    assert summarise(2, 0.0, probability, np.array([0.1, 0.9]), roi, 1.0).predicted == "malignant"
