"""The Triton server process of `cosa-edge serve`: an engine behind PyTriton, in the server's own environment.

Run by `cosa-edge serve` (serve/local_server.py) with the environment's Python (serve/server_env.py), never
imported by cosa-edge's own environment: it needs PyTriton, which needs numpy < 2. It imports only the engine
side of cosa-edge (numpy, onnx, onnxruntime), no OpenCV and no torch.

The model is served under the name, tensor names, shapes, dynamic batching and metadata parameters that
`cosa-edge export-triton` writes for production Triton (serve/triton_repo.py: one definition for both), so a
client cannot tell this server from a production one by its interface. What differs is the backend: PyTriton's
bundled server has only the Python backend, so the engine runs in this Python process behind PyTriton's proxy,
where production Triton runs its onnxruntime or tensorrt backend.

Signals: SIGTERM and SIGINT stop the server; Triton finishes the requests it holds (``--drain-timeout``
seconds at most) before it exits. One line starting with :data:`READY` goes to stdout once the model is
loaded and answering.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np

READY = "cosa-edge serve: ready"


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="cosa_edge.serve.pytriton_server", description=__doc__.splitlines()[0])
    parser.add_argument("--engine", required=True, type=Path)
    parser.add_argument("--name", default="cosa_edge")
    parser.add_argument("--grpc-address", default="127.0.0.1")
    parser.add_argument("--http-address", default="127.0.0.1")
    parser.add_argument("--metrics-address", default="127.0.0.1")
    parser.add_argument("--http-port", type=int, default=8000)
    parser.add_argument("--grpc-port", type=int, default=8001)
    parser.add_argument("--metrics-port", type=int, default=8002)
    parser.add_argument("--max-batch", type=int, default=8)
    parser.add_argument("--queue-delay-us", type=int, default=1000)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--tls-cert", type=Path)
    parser.add_argument("--tls-key", type=Path)
    parser.add_argument("--drain-timeout", type=int, default=3)
    parser.add_argument("--log-file", type=Path)
    return parser.parse_args(argv)


def serve(args: argparse.Namespace) -> int:
    from pytriton.decorators import batch
    from pytriton.triton import Triton, TritonLifecyclePolicy

    from ..contract import INPUT_NAME
    from ..engines import existing_engine_file, runtime_for
    from ..errors import CosaEdgeError, first_line
    from .triton_repo import output_dims

    runtime = runtime_for(args.engine)
    engine = runtime.open(existing_engine_file(args.engine),
                          **({"threads": args.threads} if args.threads and runtime.takes_threads else {}))
    metadata = engine.metadata
    outputs = output_dims(metadata)
    lock = threading.Lock()  # one engine: PyTriton may call from more than one thread

    @batch
    def infer(**inputs: np.ndarray) -> dict[str, np.ndarray]:
        with lock:
            result = engine.infer(inputs[INPUT_NAME])
        return {name: np.ascontiguousarray(result[name], dtype=np.float32) for name in outputs}

    # Launched by run() below, after the model's configuration holds the metadata.
    triton = Triton(config=_triton_config(args), triton_lifecycle_policy=TritonLifecyclePolicy(
        launch_triton_on_startup=False))
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    started = False
    try:
        _bind_model(triton, args, infer, metadata)
        started = True  # from here on the server may be running, and stop() has something to stop
        try:
            triton.run()
        except Exception as exc:  # PyTriton raises its own types (a port taken since the check, a load failure)
            raise CosaEdgeError(f"the Triton server did not start: {first_line(exc)}; see its log, {args.log_file}") \
                from None
        print(f"{READY}: model {args.name!r} ({engine.describe()}) on gRPC {args.grpc_address}:{args.grpc_port}"
              f"{' (TLS)' if args.tls_cert else ''}, HTTP {args.http_address}:{args.http_port}, metrics "
              f"http://{args.metrics_address}:{args.metrics_port}/metrics; Triton's log: {args.log_file}; "
              "Ctrl-C stops", flush=True)
        while not stopping.wait(1.0):
            if not triton.is_alive():
                print(f"Error: the Triton server stopped by itself; see its log, {args.log_file}", file=sys.stderr,
                      flush=True)
                return 1
        return 0
    finally:
        if started:
            triton.stop()  # Triton drains in-flight requests (--drain-timeout) before it exits
        engine.close()


def _triton_config(args: argparse.Namespace) -> Any:
    """Triton's addresses, ports, drain timeout, log and (with a certificate) gRPC over TLS, from the arguments."""
    from pytriton.triton import TritonConfig

    tls = {"grpc_use_ssl": True, "grpc_server_cert": args.tls_cert, "grpc_server_key": args.tls_key} \
        if args.tls_cert else {}
    return TritonConfig(grpc_address=args.grpc_address, grpc_port=args.grpc_port, http_address=args.http_address,
                        http_port=args.http_port, metrics_address=args.metrics_address,
                        metrics_port=args.metrics_port, exit_timeout_secs=args.drain_timeout, log_verbose=0,
                        allow_gpu_metrics=False,  # a CPU server: no NVML probe and its error line
                        log_file=args.log_file, **tls)


def _bind_model(triton: Any, args: argparse.Namespace, infer: Any, metadata: Any) -> None:
    """The model's tensors and dynamic batcher, as export-triton writes them, and the cosa-edge metadata."""
    from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor

    from ..contract import INPUT_NAME
    from .triton_repo import metadata_parameters, output_dims, preferred_batch_sizes

    size = metadata.input_size
    triton.bind(model_name=args.name, infer_func=infer,
                inputs=[Tensor(name=INPUT_NAME, dtype=np.float32, shape=(1, size, size))],
                outputs=[Tensor(name=name, dtype=np.float32, shape=tuple(dims))
                         for name, dims in output_dims(metadata).items()],
                config=ModelConfig(max_batch_size=args.max_batch, batcher=DynamicBatcher(
                    max_queue_delay_microseconds=args.queue_delay_us,
                    preferred_batch_size=preferred_batch_sizes(args.max_batch))),
                strict=True)
    # PyTriton has no option for a model's own parameters; its generated configuration is built once
    # and cached, and its backend parameters are written as the model's `parameters`. Clients read the
    # cosa-edge metadata there, as from a production repository's config.pbtxt (tests/test_serve.py checks
    # that they do, against this pinned PyTriton). Both members are private to PyTriton, hence the pin.
    for model in triton._model_manager.models:
        model._get_triton_model_config().backend_parameters.update(metadata_parameters(metadata))


def main(argv: list[str] | None = None) -> int:
    from ..errors import CosaEdgeError

    try:
        return serve(_arguments(argv))
    except CosaEdgeError as exc:
        print(f"Error: {exc}", file=sys.stderr, flush=True)
        return 2


if __name__ == "__main__":
    sys.exit(main())
