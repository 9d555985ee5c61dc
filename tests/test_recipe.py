"""The from-scratch recipe's parts: the Dice term, the learning-rate schedule, and both inside a real run."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from cosa_edge.config import load_preset  # noqa: E402
from cosa_edge.data.phantom import make_phantom_dataset  # noqa: E402
from cosa_edge.errors import CosaEdgeError  # noqa: E402
from cosa_edge.model import CLS_LOGITS, SEG_LOGITS  # noqa: E402
from cosa_edge.train.losses import multitask_loss, presence_loss, soft_dice_loss  # noqa: E402
from cosa_edge.train.loop import train  # noqa: E402
from cosa_edge.train.schedule import lr_factor  # noqa: E402


def logits_for(probability_of_lesion: torch.Tensor) -> torch.Tensor:
    """Two-class logits whose softmax gives this lesion probability per pixel."""
    p = probability_of_lesion.clamp(1e-6, 1 - 1e-6)
    return torch.stack([torch.zeros_like(p), torch.log(p / (1 - p))], dim=1)


def test_soft_dice_is_zero_for_a_perfect_mask_and_near_one_for_a_missed_lesion() -> None:
    masks = torch.zeros(2, 8, 8, dtype=torch.long)
    masks[0, 2:5, 2:5] = 1  # image 0 has a 9-pixel lesion; image 1 none
    perfect = soft_dice_loss(logits_for(masks.float()), masks)
    assert float(perfect) == pytest.approx(0.0, abs=1e-4)
    missed = soft_dice_loss(logits_for(torch.zeros(2, 8, 8)), masks[:1].expand(2, 8, 8).contiguous())
    assert float(missed) == pytest.approx(1 - 1 / 10, abs=1e-3)  # (2*0 + 1) / (0 + 9 + 1) per image
    half = torch.zeros(1, 8, 8)
    half[0, 2:5, 2:5] = 0.5
    # A lesion found at half confidence: Dice (2*4.5 + 1) / (4.5 + 9 + 1).
    assert float(soft_dice_loss(logits_for(half), masks[:1])) == pytest.approx(1 - 10 / 14.5, abs=1e-3)


def test_lesion_free_images_take_no_part_in_the_dice_term() -> None:
    """On an empty mask any false lesion scores a Dice of 0 (a loss stuck near 1 with no gradient to speak of):
    such images are left to the cross-entropy, and the Dice term is the lesion images' alone."""
    masks = torch.zeros(2, 8, 8, dtype=torch.long)
    masks[0, 2:5, 2:5] = 1
    found = torch.zeros(2, 8, 8)
    found[0, 2:5, 2:5] = 0.5
    for false_lesion in (0.0, 0.9):  # image 1 (lesion-free) predicted empty, then nearly all lesion
        found[1] = false_lesion
        both = soft_dice_loss(logits_for(found), masks)
        assert float(both) == pytest.approx(float(soft_dice_loss(logits_for(found[:1]), masks[:1])), abs=1e-6)
    empty = logits_for(torch.full((2, 8, 8), 0.7)).requires_grad_()
    loss = soft_dice_loss(empty, torch.zeros(2, 8, 8, dtype=torch.long))
    assert float(loss.detach()) == 0.0
    loss.backward()  # still part of the graph: a batch of normal images trains (on its cross-entropy) as any other
    assert empty.grad is not None and float(empty.grad.abs().sum()) == 0.0


def test_presence_term_scores_the_most_lesion_like_pixels_against_whether_there_is_a_lesion() -> None:
    """Image 0 holds a lesion, image 1 none; each is scored by the mean probability of its top 2 of 100 pixels."""
    masks = torch.zeros(2, 10, 10, dtype=torch.long)
    masks[0, 4:6, 4:6] = 1
    probability = torch.full((2, 10, 10), 0.1)
    probability[:, 4, 4:6] = 0.9  # both images: two confident pixels, the rest 0.1
    loss = presence_loss(logits_for(probability), masks, top_share=0.02)
    assert float(loss) == pytest.approx((-math.log(0.9) - math.log(0.1)) / 2, rel=1e-4)
    # The false lesion on image 1 is what costs: cleared, only the lesion image's small loss is left.
    probability[1] = 0.1
    cleared = presence_loss(logits_for(probability), masks, top_share=0.02)
    assert float(cleared) == pytest.approx((-math.log(0.9) - math.log(0.9)) / 2, rel=1e-4)
    config = load_preset("edge").replace(presence_weight=0.5)
    outputs = {SEG_LOGITS: logits_for(probability), CLS_LOGITS: torch.randn(2, 2)}
    with_term, parts = multitask_loss(outputs, masks, torch.tensor([0, -1]), config)
    without, _ = multitask_loss(outputs, masks, torch.tensor([0, -1]), config.replace(presence_weight=0.0))
    assert float(with_term - without) == pytest.approx(0.5 * parts["presence_loss"], rel=1e-5)


def test_the_dice_term_is_added_with_its_weight_and_only_when_asked() -> None:
    config = load_preset("edge").replace(dice_weight=0.0)
    masks = torch.zeros(2, 8, 8, dtype=torch.long)
    masks[:, 3:6, 3:6] = 1
    outputs = {SEG_LOGITS: torch.randn(2, 2, 8, 8), CLS_LOGITS: torch.randn(2, 2)}
    labels = torch.tensor([0, 1])
    plain, parts = multitask_loss(outputs, masks, labels, config)
    assert "dice_loss" not in parts
    with_dice, parts = multitask_loss(outputs, masks, labels, config.replace(dice_weight=0.5))
    assert float(with_dice - plain) == pytest.approx(0.5 * parts["dice_loss"], rel=1e-5)
    assert parts["dice_loss"] == pytest.approx(float(soft_dice_loss(outputs[SEG_LOGITS], masks)), rel=1e-6)


def test_warmup_cosine_rises_linearly_then_falls_along_a_cosine_to_zero() -> None:
    assert lr_factor("constant", 7.3, 10) == 1.0
    assert lr_factor("warmup-cosine", 0.0, 10, 2) == pytest.approx(0.0005)
    assert lr_factor("warmup-cosine", 1.0, 10, 2) == pytest.approx(0.5005)
    assert lr_factor("warmup-cosine", 2.0, 10, 2) == pytest.approx(1.0)
    assert lr_factor("warmup-cosine", 6.0, 10, 2) == pytest.approx(0.5)  # half-way through the decay
    assert lr_factor("warmup-cosine", 10.0, 10, 2) == pytest.approx(0.0, abs=1e-12)
    assert lr_factor("warmup-cosine", 3.0, 10, 0) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.3)))
    with pytest.raises(CosaEdgeError, match="unknown learning-rate schedule"):
        lr_factor("step", 1.0, 10)
    assert lr_factor("warmup-cosine", 0.5, 2, 5) == pytest.approx(0.501)  # capped at half of a 2-epoch run
    with pytest.raises(CosaEdgeError, match="at least 0"):
        lr_factor("warmup-cosine", 1.0, 10, -1)


def test_a_run_follows_the_schedule_step_by_step_and_logs_its_rate(tmp_path: Path) -> None:
    samples = make_phantom_dataset(8, seed=4, size=(64, 64))
    config = load_preset("edge").replace(image_size=64, decoder_channels=(32, 16, 16, 8), batch_size=4, epochs=4,
                                         val_fraction=0.0, device="cpu", lr=1e-3, lr_schedule="warmup-cosine",
                                         warmup_epochs=1, dice_weight=1.0)
    train(config, samples, tmp_path / "run", progress=False)
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    steps = 2  # 8 images in batches of 4
    expected = [1e-3 * lr_factor("warmup-cosine", epoch + (steps - 1) / steps, 4, 1) for epoch in range(4)]
    assert [record["lr"] for record in log] == pytest.approx(expected)
    assert all("dice_loss" in record for record in log)
    with pytest.raises(CosaEdgeError, match="unknown learning-rate schedule"):
        train(config.replace(lr_schedule="cyclic"), samples, tmp_path / "bad", progress=False)
    assert not (tmp_path / "bad").exists()  # refused before anything was written
