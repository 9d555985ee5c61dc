"""`cosa-edge serve`: an engine on a local Triton Inference Server (PyTriton)."""

from __future__ import annotations

from pathlib import Path

import click

from .app import cli, research_use


@cli.command()
@click.option("--engine", "engine_path", required=True, type=click.Path(dir_okay=False),
              help="An ONNX engine (.onnx: FP32, FP16 or INT8) to serve.")
@click.option("--name", default="cosa_edge", show_default=True, help="The model's name, as export-triton writes it.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind; any but loopback needs --tls-cert/--tls-key or --insecure.")
@click.option("--http-port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option("--grpc-port", type=click.IntRange(1, 65535), default=8001, show_default=True)
@click.option("--metrics-port", type=click.IntRange(1, 65535), default=8002, show_default=True,
              help="Prometheus metrics at http://HOST:PORT/metrics.")
@click.option("--max-batch", type=click.IntRange(min=1), default=8, show_default=True,
              help="The dynamic batcher merges concurrent requests into batches of up to this many frames.")
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads for the engine.")
@click.option("--tls-cert", type=click.Path(dir_okay=False), help="PEM certificate: gRPC over TLS.")
@click.option("--tls-key", type=click.Path(dir_okay=False), help="PEM private key of --tls-cert.")
@click.option("--insecure", is_flag=True, help="Allow a network --host without TLS (frames travel in clear).")
@click.option("--drain-timeout", type=click.IntRange(1, 60), default=3, show_default=True,
              help="Seconds Triton waits for in-flight requests when stopped (Ctrl-C, SIGTERM).")
@click.option("--server-log", type=click.Path(dir_okay=False), help="Write Triton's own log to this file.")
@click.option("--server-env", type=click.Path(file_okay=False),
              help="The server's Python environment (made there if missing). Default: $COSA_EDGE_SERVER_ENV, else "
              "~/.cache/cosa-edge/triton-server-pyX.Y.")
@research_use
def serve(engine_path: str, name: str, host: str, http_port: int, grpc_port: int, metrics_port: int, max_batch: int,
          threads: int | None, tls_cert: str | None, tls_key: str | None, insecure: bool, drain_timeout: int,
          server_log: str | None, server_env: str | None) -> None:
    """Serve an engine on a real Triton Inference Server on this machine (PyTriton), until Ctrl-C.

    \b
    The model has the name, tensors (image in; lesion_probability, class_probabilities out), dynamic
    batching and metadata parameters that export-triton writes, over gRPC and HTTP, with Prometheus
    metrics. Clients: `cosa-edge infer --server HOST:PORT`, `cosa-edge bench --server HOST:PORT`.
    PyTriton needs numpy < 2, so the server runs in its own Python environment, made on first use
    (about a minute, from PyPI) and reused. Its Triton has only the Python backend: the engine runs
    in ONNX Runtime in the server's Python process, not in Triton's onnxruntime or tensorrt backends,
    so its speed describes this server, not a production one (docs/serving.md).
    """
    from ..serve.local_server import ServeOptions, exec_server

    options = ServeOptions(engine=Path(engine_path), name=name, host=host, http_port=http_port, grpc_port=grpc_port,
                           metrics_port=metrics_port, max_batch=max_batch, threads=threads,
                           tls_cert=Path(tls_cert) if tls_cert else None, tls_key=Path(tls_key) if tls_key else None,
                           insecure=insecure, drain_timeout=drain_timeout,
                           log_file=Path(server_log) if server_log else None)
    exec_server(options, Path(server_env) if server_env else None, notify=lambda line: click.echo(line, err=True))

