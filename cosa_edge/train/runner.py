"""From a command line to a training run: load the data, then train here or launch torchrun."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..config import TrainConfig
from ..data import class_counts, load_dataset
from ..errors import CosaEdgeError
from ..fileio import atomic_write_json
from .distributed import LaunchOptions, init_distributed, run_torchrun, shutdown_distributed
from .loop import TrainResult, train


def data_summary(spec: str, samples: list) -> dict[str, Any]:
    return {"spec": spec, "images": len(samples), "counts": class_counts(samples)}


def run_training(config: TrainConfig, data_spec: str, run_dir: Path, *, resume: bool = False,
                 launch: LaunchOptions = LaunchOptions(), progress: bool = True) -> TrainResult | None:
    """Train in this process, or start ``launch.nproc_per_node`` workers through torchrun.

    Returns the result in the process that trained (rank 0 of a distributed run
    returns it inside the worker; the launching process returns None).
    """
    run_dir = Path(run_dir)
    if launch.needs_launcher:
        if (run_dir / "last.pt").exists() and not resume:
            raise CosaEdgeError(f"{run_dir} already holds a training run; pass --resume to continue it or choose "
                                "another --out")
        launch_file = run_dir / "launch.json"
        atomic_write_json(launch_file, {"config": config.to_dict(), "data": data_spec, "resume": resume})
        run_torchrun(launch, launch_file)
        return None
    ctx = init_distributed(config.device)
    try:
        samples = load_dataset(data_spec, progress=progress and ctx.is_main, phantom_size=config.model.image_size,
                               seed=config.seed, include_normal=config.include_normal)
        return train(config, samples, run_dir, data_summary=data_summary(data_spec, samples), resume=resume,
                     progress=progress, ctx=ctx)
    finally:
        shutdown_distributed()


def run_from_launch_file(path: Path) -> None:
    """The body of each torchrun worker (see :mod:`cosa_edge.train.worker`)."""
    description = json.loads(Path(path).read_text())
    config = TrainConfig.from_dict(description["config"])
    run_training(config, description["data"], Path(path).parent, resume=description["resume"])
