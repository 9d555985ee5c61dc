"""`cosa-edge serve`: check the options, find or make the server's environment, and become the server.

The checks that give one clear message (an engine that is not there or carries no cosa-edge metadata, a port
in use, a network address without TLS) run here, in cosa-edge's own environment, before anything starts.
Then this process is replaced by the server (serve/pytriton_server.py, in the environment of
serve/server_env.py): Ctrl-C and SIGTERM reach the server itself, with no parent in between to forward them.

Network exposure: the server binds to 127.0.0.1 unless ``--host`` says otherwise. Frames of patients must not
cross a network in clear, so another address needs TLS on gRPC (``--tls-cert``/``--tls-key``; Triton's HTTP
endpoint has no TLS of its own and then stays on 127.0.0.1) or an explicit ``--insecure``.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import CosaEdgeError
from .server_env import ensure_server_env, process_environment

DEFAULT_PORTS = {"http": 8000, "grpc": 8001, "metrics": 8002}  # Triton's own defaults


@dataclass(frozen=True)
class ServeOptions:
    engine: Path
    name: str = "cosa_edge"
    host: str = "127.0.0.1"
    http_port: int = DEFAULT_PORTS["http"]
    grpc_port: int = DEFAULT_PORTS["grpc"]
    metrics_port: int = DEFAULT_PORTS["metrics"]
    max_batch: int = 8
    threads: int | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    insecure: bool = False
    drain_timeout: int = 3
    log_file: Path | None = None


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def addresses(options: ServeOptions) -> dict[str, str]:
    """Where each endpoint binds. With TLS, HTTP (which Triton cannot encrypt) stays on loopback."""
    host = "127.0.0.1" if options.host == "localhost" else options.host
    http = "127.0.0.1" if options.tls_cert and not is_loopback(host) else host
    return {"grpc": host, "http": http, "metrics": host}


def check_options(options: ServeOptions) -> None:
    """Everything that can be known wrong before a server starts, each as one message."""
    engine = Path(options.engine)
    if not engine.is_file():
        raise CosaEdgeError(f"engine {engine} does not exist")
    if engine.suffix.lower() != ".onnx":
        raise CosaEdgeError(f"{engine.name}: `cosa-edge serve` runs ONNX engines (.onnx) on this machine's CPU; a "
                            "TensorRT plan is served by NVIDIA's Triton container (`cosa-edge export-triton`, "
                            "docs/serving.md)")
    from .triton_repo import read_served_engine

    # The checks export-triton makes (hash, cosa-edge metadata, no TensorRT plugin node), before any server starts.
    read_served_engine(engine, None)
    if bool(options.tls_cert) != bool(options.tls_key):
        raise CosaEdgeError("TLS needs both --tls-cert and --tls-key")
    for flag, path in (("--tls-cert", options.tls_cert), ("--tls-key", options.tls_key)):
        if path and not Path(path).is_file():
            raise CosaEdgeError(f"{flag} {path} does not exist")
    if not is_loopback(options.host) and not options.tls_cert and not options.insecure:
        raise CosaEdgeError(f"--host {options.host} would send patients' frames over the network in clear; give "
                            "--tls-cert and --tls-key (gRPC over TLS), or --insecure if the network is protected "
                            "some other way")
    ports = {"--http-port": options.http_port, "--grpc-port": options.grpc_port,
             "--metrics-port": options.metrics_port}
    if len(set(ports.values())) < len(ports):
        raise CosaEdgeError(f"--http-port, --grpc-port and --metrics-port must differ (got {sorted(ports.values())})")
    if options.max_batch < 1:
        raise CosaEdgeError("--max-batch must be at least 1")
    bound = addresses(options)
    for (flag, port), endpoint in zip(ports.items(), ("http", "grpc", "metrics")):
        check_port_free(bound[endpoint], port, flag)


def check_port_free(host: str, port: int, flag: str) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as a server binds: TIME_WAIT is no conflict
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise CosaEdgeError(f"port {port} on {host} is in use (another server?); choose another with "
                                    f"{flag}") from None
            raise CosaEdgeError(f"cannot listen on {host}:{port} ({exc.strerror}); check --host and {flag}") from None


def server_command(options: ServeOptions, python: Path) -> list[str]:
    bound = addresses(options)
    command = [str(python), "-m", "cosa_edge.serve.pytriton_server", "--engine", str(Path(options.engine).resolve()),
               "--name", options.name, "--grpc-address", bound["grpc"], "--http-address", bound["http"],
               "--metrics-address", bound["metrics"], "--http-port", str(options.http_port),
               "--grpc-port", str(options.grpc_port), "--metrics-port", str(options.metrics_port),
               "--max-batch", str(options.max_batch), "--drain-timeout", str(options.drain_timeout)]
    if options.threads:
        command += ["--threads", str(options.threads)]
    if options.tls_cert and options.tls_key:
        command += ["--tls-cert", str(Path(options.tls_cert).resolve()), "--tls-key",
                    str(Path(options.tls_key).resolve())]
    command += ["--log-file", str(log_file(options))]
    return command


def log_file(options: ServeOptions) -> Path:
    """Triton's own log (its start-up tables, model loading, warnings): a file, so the terminal shows what matters."""
    if options.log_file:
        return Path(options.log_file).resolve()
    return Path(tempfile.gettempdir()) / f"cosa-edge-serve-{options.grpc_port}.log"


def exec_server(options: ServeOptions, server_env: Path | None = None,
                notify: Callable[[str], None] = lambda _line: None) -> None:
    """Check, prepare the environment, and replace this process with the server (does not return)."""
    check_options(options)
    env = ensure_server_env(server_env, notify=notify)
    if not is_loopback(options.host) and not options.tls_cert:
        notify(f"warning: --insecure: frames cross the network to {options.host} unencrypted")
    command = server_command(options, env.python)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(command[0], command, process_environment(env))
