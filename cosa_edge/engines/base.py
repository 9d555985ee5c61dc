"""One small interface for every runtime (in the manner of Polygraphy's runners), and the record that says
what cosa-edge knows of each runtime (declared in the runtime's own module, gathered in engines/runtimes.py)."""

from __future__ import annotations

import abc
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

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

    def close(self) -> None:  # noqa: B027  (not abstract: engines that hold nothing keep this no-op)
        """Release the runtime's resources (sessions, contexts, device memory)."""

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def describe(self) -> str:
        shapes = ", ".join(f"{s.name} {s.dtype}{list(s.shape)}" for s in self.outputs)
        return f"{self.backend} engine {self.path.name}: {self.metadata.architecture}/{self.metadata.encoder} " \
               f"{self.input_size}px {self.metadata.precision} -> {shapes}"


@dataclass(frozen=True)
class BatchRange:
    """The batch sizes a TensorRT optimisation profile covers (the other runtimes take any batch)."""

    minimum: int = 1
    optimum: int = 4
    maximum: int = 8

    @classmethod
    def parse(cls, text: str) -> BatchRange:
        try:
            values = [int(v) for v in text.split(":")]
        except ValueError:
            values = []
        if len(values) == 1:
            values = values * 3
        if len(values) != 3 or not 1 <= values[0] <= values[1] <= values[2]:
            raise CosaEdgeError(f"--batch {text!r} must be MIN:OPT:MAX with 1 <= MIN <= OPT <= MAX, e.g. 1:4:8")
        return cls(*values)


@dataclass(frozen=True)
class BuildOptions:
    """What a build may need beyond the model and the precision (only TensorRT uses them today)."""

    batch: BatchRange = BatchRange()
    workspace_gib: float = 2.0
    timing_cache: Path | None = None  # None: beside the engine (Runtime.timing_cache_for)


@dataclass(frozen=True)
class BuildResult:
    engine: Path
    target: str
    precision: str
    details: dict[str, Any]
    notes: tuple[str, ...] = ()  # one line each, for the user: what the build did differently and why
    check: Any = None  # what the ``check`` of build_engine returned for the engine, where one was given


#: ``build(onnx_path, output, precision, metadata, options)``: write an engine at ``output`` from a verified FP32
#: ONNX model (or a checked INT8 QDQ one), with the model's metadata travelling with it.
Builder = Callable[[Path, Path, str, ModelMetadata, BuildOptions], BuildResult]


#: A build's timing cache beside its engine: NAME.timing.cache (Runtime.timing_cache).
TIMING_CACHE_SUFFIX = ".timing.cache"


@dataclass(frozen=True)
class Runtime:
    """One runtime, as the rest of cosa-edge sees it: how its engines are named, opened and built, what travels
    with them, and how Triton serves them. Each runtime module declares its own; engines/runtimes.py gathers them.
    """

    name: str  # the --target / --backend value and Engine.backend
    label: str  # for people: "ONNX Runtime"
    open: Callable[..., Engine]  # open(path, **options) -> Engine
    suffixes: tuple[str, ...]  # engine files it opens
    default_file: str  # the file a build writes where none is named (the demo's)
    build: Builder | None = None  # None: not a build-engine target
    precisions: tuple[str, ...] = ("fp32",)  # what build-engine makes for it
    default_precision: str = "fp32"
    sidecar: bool = False  # NAME.json beside the engine holds the metadata the file cannot
    companions: tuple[str, ...] = ()  # suffixes of files beside it that belong to it (OpenVINO's weights, .bin)
    takes_threads: bool = True  # a CPU runtime: --threads reaches it
    timing_cache: bool = False  # builds keep a timing cache beside the engine (NAME.timing.cache)
    int8_scheme: str | None = None  # the INT8 QDQ scheme of its 8-bit engines (engines/int8.py SCHEMES)
    #: What its INT8 engine is, made from the calibrated QDQ graph: "graph" (the QDQ graph itself, checked as it
    #: will run), "converted" (the runtime's builder converts it, and the conversion is what is checked) or
    #: "plan" (checked as a QDQ graph, then built into a plan on the machine that runs it).
    int8_engine: str = "graph"
    #: Why its engines cannot run the COSA plugin node here, or None where they can (builds then use the standard
    #: ops, which compute the same region maps).
    plugin_problem: Callable[[], str | None] = lambda: None
    triton_file: str | None = None  # the model file in a Triton repository, where Triton serves it
    gpu_only: bool = False

    def files(self, path: str | Path) -> list[Path]:
        """An engine and the files that travel with it: its sidecar (NAME.json beside NAME), its companions."""
        path = Path(path)
        files = [path]
        if self.sidecar:
            files.append(Path(str(path) + ".json"))
        files += [path.with_suffix(suffix) for suffix in self.companions]
        return files

    def timing_cache_for(self, engine: Path) -> Path | None:
        """The timing cache a build of ``engine`` reuses and updates (``NAME.timing.cache``), for runtimes with one."""
        return Path(engine).with_suffix(TIMING_CACHE_SUFFIX) if self.timing_cache else None
