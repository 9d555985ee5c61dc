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
from cosa_edge.train.loop import multitask_loss, soft_dice_loss, train  # noqa: E402
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
