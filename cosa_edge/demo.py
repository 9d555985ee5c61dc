"""`cosa-edge demo`: the path from data to a scored model on defaults that need no data or GPU."""

from __future__ import annotations

import time
from pathlib import Path

import click
import cv2
import numpy as np

from . import CLASS_NAMES
from .config import load_preset
from .data import Sample, load_dataset
from .errors import CosaEdgeError
from .fileio import atomic_write_bytes, atomic_write_json, atomic_write_text
from .report.roc import plot_roc
from .report.tables import aggregate, build_tables


def overlay(sample: Sample, predicted_mask: np.ndarray, probabilities: np.ndarray | None) -> np.ndarray:
    """The image with ground truth (green) and prediction (red) contours and the predicted class."""
    picture = cv2.cvtColor(sample.image, cv2.COLOR_GRAY2BGR)
    for mask, colour in ((sample.mask, (0, 200, 0)), (predicted_mask, (0, 0, 255))):
        contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(picture, contours, -1, colour, 1)
    if probabilities is not None:
        predicted = int(np.argmax(probabilities))
        text = f"{CLASS_NAMES[predicted]} {probabilities[predicted]:.2f} (true: {sample.class_name})"
        cv2.putText(picture, text, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 0), 1, cv2.LINE_AA)
    return picture


def run_demo(out_dir: Path, data_spec: str = "phantom:60", epochs: int = 8, image_size: int = 128,
             device: str = "auto") -> Path:
    from .train.checkpoint import load_model
    from .train.distributed import resolve_device
    from .train.evaluate import predict, score
    from .train.loop import split_validation, train

    out_dir = Path(out_dir)
    run_dir = out_dir / "run"
    if (run_dir / "last.pt").exists():
        raise CosaEdgeError(f"{out_dir} already holds a demo; remove it or pass another --out")
    started = time.perf_counter()
    config = load_preset("edge").replace(epochs=epochs, image_size=image_size, val_fraction=0.25, device=device)

    click.echo(f"[1/3] data: {data_spec}")
    samples = load_dataset(data_spec, phantom_size=256, seed=config.seed)
    click.echo(f"[2/3] training MTL-COSA ({config.model.encoder}, {image_size}px) for {epochs} epochs")
    train(config, samples, run_dir, data_summary={"spec": data_spec, "images": len(samples)})

    click.echo("[3/3] evaluating best.pt on the held-out images")
    torch_device = resolve_device(device)
    model, _, _ = load_model(run_dir / "best.pt", torch_device)
    _, val_samples = split_validation(samples, config)
    predictions = predict(model, val_samples, image_size, torch_device)
    metrics = score(val_samples, predictions)
    atomic_write_json(out_dir / "metrics.json", metrics)

    tiles = [overlay(s, m, p) for s, m, p in zip(val_samples[:6], predictions.masks or [], predictions.probabilities)]
    tiles = [cv2.resize(t, (256, 256)) for t in tiles]
    ok, png = cv2.imencode(".png", np.concatenate(tiles, axis=1))
    if ok:
        atomic_write_bytes(out_dir / "overlays.png", png.tobytes())
    has_both_classes = len(set(predictions.labels.tolist())) == 2
    if predictions.probabilities is not None and has_both_classes:
        plot_roc({"mtl_cosa": (predictions.labels, predictions.probabilities[:, 0])}, out_dir / "roc.png", "ROC (held-out)")

    tables = build_tables({"mtl_cosa": {"aggregate": aggregate([metrics])}}, data_spec)
    lines = [f"# cosa-edge demo\n",
             f"MTL-COSA ({config.model.encoder}, {image_size}x{image_size}) trained from scratch for {epochs} epochs "
             f"on `{data_spec}` ({len(samples)} images, {len(val_samples)} held out), "
             f"in {time.perf_counter() - started:.0f} s on {torch_device}.\n",
             "Scores on the held-out images (one split, so the ± columns are 0):\n"]
    for header, rows in tables.values():
        lines.append("| " + " | ".join(header) + " |\n|" + "|".join("---" for _ in header) + "|")
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        lines.append("")
    lines.append("![overlays](overlays.png)  \nGreen: ground truth. Red: prediction.\n")
    if (out_dir / "roc.png").exists():
        lines.append("![ROC](roc.png)\n")
    report = out_dir / "report.md"
    atomic_write_text(report, "\n".join(lines))
    return report
