"""The PyTorch eager backend: a checkpoint behind the engine contract, the reference for comparisons.

It lives on the export side, not in cosa_edge.engines, because it needs what
the export needs (the training checkpoint loader and the export's
``DeployModule``), and the runtime side must never import the training side.
Open it through :func:`cosa_edge.backends.open_engine`, which picks it for a .pt file. Importing this module
loads no torch: that happens when an engine is opened.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from .._optional import require
from ..contract import CLASS_OUTPUT, INPUT_NAME, LESION_OUTPUT, OOD_OUTPUT
from ..engines.base import Engine, Runtime, TensorSpec

NAME = "torch"


class TorchEngine(Engine):
    backend = NAME

    def __init__(self, path: Path, device: str = "cpu", threads: int | None = None) -> None:
        torch = require("torch")  # first, so that a missing torch is one line naming the extra
        from ..train.checkpoint import load_verified_model
        from ..train.reproducibility import torch_threads
        from .deploy_module import DeployModule, deploy_metadata

        # The count applies to this engine's own calls only: torch's thread count is process-wide, and a caller
        # (a training run later in the same process) must find it as it left it.
        self._threads = lambda: torch_threads(threads)
        with self._threads():
            model, checkpoint, self.integrity = load_verified_model(Path(path), device)
        self._torch = torch
        self.device = torch.device(device)
        self.module = DeployModule.of_checkpoint(model, checkpoint).to(self.device).eval()
        metadata = deploy_metadata(model, checkpoint, self.module.output_names)
        super().__init__(path, metadata)

    @property
    def inputs(self) -> list[TensorSpec]:
        return [TensorSpec(INPUT_NAME, ("batch", 1, self.input_size, self.input_size), "float32")]

    @property
    def outputs(self) -> list[TensorSpec]:
        shapes = {LESION_OUTPUT: ("batch", 1, self.input_size, self.input_size), CLASS_OUTPUT: ("batch", 2),
                  OOD_OUTPUT: ("batch", 1)}
        return [TensorSpec(name, shapes[name], "float32") for name in self.module.output_names]

    def _infer(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        torch = self._torch
        started = time.perf_counter()
        with self._threads(), torch.inference_mode():
            tensor = torch.from_numpy(batch).to(self.device)
            uploaded = time.perf_counter()
            values = self.module(tensor)
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            computed = time.perf_counter()
            arrays = [v.float().cpu().numpy() for v in values]
        done = time.perf_counter()
        self.last_times.stages = {"host_to_device": (uploaded - started) * 1e3, "compute": (computed - uploaded) * 1e3,
                                  "device_to_host": (done - computed) * 1e3}
        return dict(zip(self.module.output_names, arrays))


#: The reference, not a deployment target: no builder, no Triton serving.
RUNTIME = Runtime(name=NAME, label="PyTorch eager", open=TorchEngine, suffixes=(".pt", ".pth"), default_file="model.pt")
