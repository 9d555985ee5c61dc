"""A Triton server's cosa-edge model as an Engine: `cosa-edge infer --server HOST:PORT` and the load test.

Any Triton that serves the model as `cosa-edge export-triton` writes it or as `cosa-edge serve` serves it
(input ``image``, the contract's outputs, the cosa-edge metadata as the model's parameters) works: the
metadata (input size, presence and out-of-distribution thresholds, calibration) is read from the model's
configuration, so the stream's post-processing applies the served model's own rules.

Each batch goes out as one request per frame, all in flight at once (gRPC, asynchronous): a round trip is
paid once per batch, not once per frame, and the server's dynamic batcher merges the frames of this client
with those of others. Needs the ``triton`` extra (tritonclient[grpc]); no torch, no runtime.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .._optional import require
from ..contract import INPUT_NAME, ModelMetadata
from ..engines.artifact import Integrity
from ..engines.base import Engine, TensorSpec
from ..errors import CosaEdgeError, first_line

if TYPE_CHECKING:  # the `triton` extra, imported only when a server is used
    from tritonclient.grpc import InferenceServerClient, InferInput, InferResult
    from tritonclient.utils import InferenceServerException

#: Seconds to wait for a server's first answer, and for each batch.
CONNECT_TIMEOUT_S = 10.0
REQUEST_TIMEOUT_S = 60.0


def parse_server(address: str) -> str:
    """``HOST:PORT`` (gRPC), checked, as tritonclient takes it."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise CosaEdgeError(f"--server {address!r} must be HOST:PORT of a Triton gRPC endpoint, e.g. 127.0.0.1:8001")
    return f"{host}:{port}"


def connect(address: str, tls_ca: Path | None = None) -> InferenceServerClient:
    """A gRPC client of a live server, or one clear error."""
    grpc = require("tritonclient.grpc")
    utils = require("tritonclient.utils")
    url = parse_server(address)
    options = {"ssl": True, "root_certificates": str(tls_ca)} if tls_ca else {}
    if tls_ca and not Path(tls_ca).is_file():
        raise CosaEdgeError(f"--tls-ca {tls_ca} does not exist")
    client = grpc.InferenceServerClient(url, **options)
    try:
        live = client.is_server_live(client_timeout=CONNECT_TIMEOUT_S)
    except utils.InferenceServerException as exc:
        client.close()
        raise CosaEdgeError(f"no Triton server answers at {url} ({first_line(exc)}); start one with "
                            "`cosa-edge serve --engine ENGINE`, or check the address (its gRPC port, 8001 by "
                            "default)") from None
    if not live:
        client.close()
        raise CosaEdgeError(f"the Triton server at {url} is not live yet; try again when it has started")
    return client


def served_metadata(client: InferenceServerClient, address: str, model: str) -> tuple[ModelMetadata, dict]:
    """The cosa-edge metadata of ``model`` as the server's configuration carries it, and that configuration."""
    utils = require("tritonclient.utils")
    try:
        ready = client.is_model_ready(model, client_timeout=CONNECT_TIMEOUT_S)
    except utils.InferenceServerException as exc:
        raise CosaEdgeError(f"the server at {address} cannot say whether it serves {model!r}: {first_line(exc)}") \
            from None
    if not ready:
        try:
            names = [m["name"] for m in client.get_model_repository_index(as_json=True).get("models", [])]
        except utils.InferenceServerException:
            names = []
        raise CosaEdgeError(f"the server at {address} has no model {model!r} ready"
                            + (f"; it has {', '.join(names)}" if names else "") + "; choose one with --model")
    config = client.get_model_config(model, as_json=True, client_timeout=CONNECT_TIMEOUT_S)["config"]
    parameters = {key: value.get("string_value", "") for key, value in config.get("parameters", {}).items()}
    metadata = ModelMetadata.from_props(parameters, f"model {model!r} on {address}")
    inputs = [(i["name"], [int(d) for d in i.get("dims", [])]) for i in config.get("input", [])]
    expected = [(INPUT_NAME, [1, metadata.input_size, metadata.input_size])]
    if inputs != expected:
        raise CosaEdgeError(f"model {model!r} on {address} takes {inputs}, not the cosa-edge engine input {expected}")
    return metadata, config


class TritonServerEngine(Engine):
    """The model ``model`` on the Triton server at ``address`` (its gRPC endpoint), behind the Engine interface."""

    backend = "triton"

    def __init__(self, address: str, model: str = "cosa_edge", tls_ca: Path | None = None) -> None:
        self.grpc = require("tritonclient.grpc")
        self.utils = require("tritonclient.utils")
        self.address = parse_server(address)
        self.model = model
        self.client = connect(self.address, tls_ca)
        try:
            metadata, self.config = served_metadata(self.client, self.address, model)
        except BaseException:
            self.client.close()
            raise
        super().__init__(Path(f"{model}@{self.address}"), metadata)
        # What the server reports its model's graph hash to be; this client cannot check the server's file.
        self.integrity = Integrity(sha256=metadata.graph_sha256, verified=False) if metadata.graph_sha256 else None
        self.max_batch_size = int(self.config.get("max_batch_size", 0))

    @property
    def inputs(self) -> list[TensorSpec]:
        return [TensorSpec(INPUT_NAME, ("batch", 1, self.input_size, self.input_size), "tensor(float)")]

    @property
    def outputs(self) -> list[TensorSpec]:
        return [TensorSpec(o["name"], ("batch", *(int(d) for d in o.get("dims", []))), "tensor(float)")
                for o in self.config.get("output", [])]

    def request_input(self, frame: np.ndarray) -> InferInput:
        """One frame (1, 1, S, S) float32 as a request's input."""
        tensor = self.grpc.InferInput(INPUT_NAME, list(frame.shape), "FP32")
        tensor.set_data_from_numpy(frame)
        return tensor

    def _infer(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        started = time.perf_counter()
        answers: list[object] = [None] * len(batch)
        remaining = threading.Semaphore(0)

        def answered(index: int) -> Callable[[InferResult | None, InferenceServerException | None], None]:
            def callback(result: InferResult | None, error: InferenceServerException | None) -> None:
                answers[index] = error if error is not None else result
                remaining.release()
            return callback

        for index in range(len(batch)):
            self.client.async_infer(self.model, [self.request_input(batch[index:index + 1])], answered(index),
                                    client_timeout=REQUEST_TIMEOUT_S)
        deadline = time.monotonic() + REQUEST_TIMEOUT_S + 5.0
        for _ in range(len(batch)):
            if not remaining.acquire(timeout=max(0.0, deadline - time.monotonic())):
                raise CosaEdgeError(f"the server at {self.address} did not answer within {REQUEST_TIMEOUT_S:.0f} s")
        errors = [a for a in answers if isinstance(a, BaseException)]
        if errors:
            raise CosaEdgeError(f"the server at {self.address} answered {len(errors)} of {len(batch)} frames with an "
                                f"error: {first_line(errors[0])}")
        names = [o["name"] for o in self.config.get("output", [])]
        outputs = {name: np.concatenate([a.as_numpy(name) for a in answers], axis=0).astype(np.float32, copy=False)
                   for name in names}
        self.last_times.stages = {"round_trip": (time.perf_counter() - started) * 1000.0}
        return outputs

    def describe(self) -> str:
        return f"Triton model {self.model!r} at {self.address}: {self.metadata.architecture}/{self.metadata.encoder} " \
               f"{self.input_size}px {self.metadata.precision}"

    def close(self) -> None:
        self.client.close()
