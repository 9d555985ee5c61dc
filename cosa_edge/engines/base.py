"""One small interface for every runtime (in the manner of Polygraphy's runners)."""

from __future__ import annotations

import abc
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import numpy as np

from ..contract import INPUT_NAME, ModelMetadata
from ..errors import CosaEdgeError
from .artifact import Integrity


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int | str, ...]  # a string marks a dynamic axis, e.g. "batch"
    dtype: str


@dataclass
class StageTimes:
    """Milliseconds per stage of the last ``infer`` call, where the backend can separate them."""

    stages: dict[str, float] = field(default_factory=dict)


class Engine(abc.ABC):
    """A loaded model: ``infer`` takes a float32 (N, 1, S, S) batch of grey levels and returns named outputs."""

    backend: str = ""
    #: What the loader checked of the file (its hash, and whether one was recorded to check against); each
    #: backend sets it after its check, and the audit records (the JSONL header) read it.
    integrity: Integrity | None = None

    def __init__(self, path: Path, metadata: ModelMetadata) -> None:
        self.path = Path(path)
        self.metadata = metadata
        self.last_times = StageTimes()

    @property
    def input_size(self) -> int:
        return self.metadata.input_size

    @property
    @abc.abstractmethod
    def inputs(self) -> list[TensorSpec]: ...

    @property
    @abc.abstractmethod
    def outputs(self) -> list[TensorSpec]: ...

    @abc.abstractmethod
    def _infer(self, batch: np.ndarray) -> dict[str, np.ndarray]: ...

    def infer(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """Run one batch; checks its shape against the engine before any runtime sees it."""
        batch = self.check_batch(batch)
        return self._infer(batch)

    def check_batch(self, batch: np.ndarray) -> np.ndarray:
        size = self.input_size
        if batch.ndim == 3:
            batch = batch[:, None]
        if batch.ndim != 4 or batch.shape[1:] != (1, size, size):
            raise CosaEdgeError(f"{self.path.name} takes {INPUT_NAME} batches of shape (N, 1, {size}, {size}); "
                                f"got {tuple(batch.shape)}. Resize frames with cosa_edge.data.resize_grey first")
        return np.ascontiguousarray(batch, dtype=np.float32)

    def warmup(self, iterations: int = 3, batch_size: int = 1) -> float:
        """Run a few batches so that lazy initialisation and autotuning are not measured; returns seconds."""
        started = time.perf_counter()
        dummy = np.full((batch_size, 1, self.input_size, self.input_size), 128.0, np.float32)
        for _ in range(iterations):
            self.infer(dummy)
        return time.perf_counter() - started

    def close(self) -> None:
        """Release the runtime's resources (sessions, contexts, device memory)."""

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def describe(self) -> str:
        shapes = ", ".join(f"{s.name} {s.dtype}{list(s.shape)}" for s in self.outputs)
        return f"{self.backend} engine {self.path.name}: {self.metadata.architecture}/{self.metadata.encoder} " \
               f"{self.input_size}px {self.metadata.precision} -> {shapes}"
