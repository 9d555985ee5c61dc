"""`cosa-edge serve` (a real Triton Inference Server on loopback), its clients and the load test.

Real: PyTriton's bundled Triton server (2.51) in the server's own environment (made on first use from PyPI,
then reused: serve/server_env.py), the conftest's trained and exported ONNX engine run by ONNX Runtime in
that server, tritonclient's gRPC client, the streaming pipeline and the load test. Nothing is stubbed. Not
covered here: Triton's onnxruntime and tensorrt backends (PyTriton's server has only the Python backend),
GPUs, and a second machine.
"""

from __future__ import annotations

import json
import math
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

pytest.importorskip("tritonclient.grpc")

from cosa_edge.cli import cli
from cosa_edge.backends import open_engine
from cosa_edge.errors import CosaEdgeError
from cosa_edge.serve.client import TritonServerEngine
from cosa_edge.serve.local_server import ServeOptions, check_options
from cosa_edge.serve.pytriton_server import READY
from cosa_edge.serve.server_env import ensure_server_env

#: Seconds a server may take to load (PyTriton starts in about 4 s here) and to stop (drain 3 s, then cleanup).
START_TIMEOUT_S, STOP_TIMEOUT_S = 120, 20


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


class RunningServer:
    """`cosa-edge serve` as a user starts it (the CLI, in a process of its own), with its ready line awaited."""

    def __init__(self, engine: Path, log: Path, *extra: str) -> None:
        self.http, self.grpc, self.metrics = free_ports(3)
        self.address = f"127.0.0.1:{self.grpc}"
        self.log = log
        self.process = subprocess.Popen(
            [sys.executable, "-m", "cosa_edge.cli", "serve", "--engine", str(engine), "--http-port", str(self.http),
             "--grpc-port", str(self.grpc), "--metrics-port", str(self.metrics), "--server-log", str(log), *extra],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.output: list[str] = []
        ready = threading.Event()

        def read() -> None:
            for line in self.process.stdout:
                self.output.append(line)
                if line.startswith(READY):
                    ready.set()
        threading.Thread(target=read, daemon=True).start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not ready.wait(0.2):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail("cosa-edge serve did not become ready:\n" + "".join(self.output)
                            + (log.read_text()[-3000:] if log.exists() else ""))

    def stop(self) -> float:
        """SIGTERM, as a service manager stops it; returns the seconds it took to exit."""
        started = time.monotonic()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return time.monotonic() - started


@pytest.fixture(scope="session")
def server_env() -> Path:
    """The server's environment, made on first use (about a minute on a fresh machine)."""
    try:
        return ensure_server_env(notify=lambda line: print(line, flush=True)).root
    except CosaEdgeError as exc:
        if "glibc" in str(exc) or "built for Linux" in str(exc):
            pytest.skip(str(exc))  # the platform, not the code: PyTriton's server binary cannot run here
        raise


@pytest.fixture(scope="session")
def server(server_env: Path, exported_onnx: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    running = RunningServer(exported_onnx, tmp_path_factory.mktemp("serve") / "triton.log")
    yield running
    running.stop()


def test_the_server_answers_concurrent_requests_as_the_local_engine_does(server: RunningServer,
                                                                         exported_onnx: Path) -> None:
    import tritonclient.grpc as grpcclient

    with open_engine(exported_onnx) as local:
        size = local.input_size
        frames = np.random.default_rng(0).uniform(0, 255, (24, 1, 1, size, size)).astype(np.float32)
        expected = [local.infer(frame) for frame in frames]
    client = grpcclient.InferenceServerClient(server.address)
    answers: dict[int, object] = {}
    done = threading.Semaphore(0)
    for index, frame in enumerate(frames):  # all 24 in flight at once: the dynamic batcher merges them
        tensor = grpcclient.InferInput("image", list(frame.shape), "FP32")
        tensor.set_data_from_numpy(frame)
        client.async_infer("cosa_edge", [tensor], lambda result, error, i=index: (
            answers.__setitem__(i, error or result), done.release()))
    for _ in frames:
        assert done.acquire(timeout=60)
    for index, want in enumerate(expected):
        got = answers[index]
        assert not isinstance(got, Exception), got
        for name, value in want.items():
            np.testing.assert_allclose(got.as_numpy(name), value, rtol=1e-4, atol=1e-5, err_msg=name)
    client.close()
    # Requests were merged into batches: fewer executions than inferences, by Triton's Prometheus metrics.
    metrics = urllib.request.urlopen(f"http://127.0.0.1:{server.metrics}/metrics", timeout=10).read().decode()
    counts = {name: sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
                        if line.startswith(name + "{") and 'model="cosa_edge"' in line)
              for name in ("nv_inference_count", "nv_inference_exec_count")}
    assert counts["nv_inference_count"] >= len(frames) > 0
    assert counts["nv_inference_exec_count"] < counts["nv_inference_count"]


def test_the_server_carries_the_engine_s_metadata_and_export_triton_s_interface(server: RunningServer,
                                                                                exported_onnx: Path) -> None:
    with open_engine(exported_onnx) as local, TritonServerEngine(server.address) as remote:
        # Read back from the model's parameters; the long texts (model card, contract) stay in the model file.
        short = lambda metadata: {k: v for k, v in asdict(metadata).items() if k not in ("model_card", "contract")}  # noqa: E731
        assert short(remote.metadata) == short(local.metadata)
        assert remote.metadata.presence == local.metadata.presence and remote.metadata.input_size == local.input_size
        assert remote.integrity.sha256 == local.integrity.sha256 and not remote.integrity.verified
        assert [o.name for o in remote.outputs] == [o.name for o in local.outputs]
        config = remote.config
    from cosa_edge.serve.triton_repo import model_config

    # The same tensors, batch size and batching as the repository export-triton writes for production Triton.
    written = model_config(local.metadata, "cosa_edge", "onnxruntime", max_batch=8, instances=1, kind="cpu")
    assert [(o["name"], [int(d) for d in o["dims"]]) for o in config["output"]] == \
        [(o.name, list(o.dims)) for o in written.output]
    assert int(config["max_batch_size"]) == written.max_batch_size
    assert [int(b) for b in config["dynamic_batching"]["preferred_batch_size"]] == \
        list(written.dynamic_batching.preferred_batch_size)


def test_a_bad_request_gets_an_error_and_the_server_keeps_serving(server: RunningServer) -> None:
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException

    client = grpcclient.InferenceServerClient(server.address)
    size = int(client.get_model_config("cosa_edge", as_json=True)["config"]["input"][0]["dims"][-1])
    for shape, dtype, numpy_type, message in (([1, 1, size // 2, size // 2], "FP32", np.float32, "unexpected shape"),
                                              ([1, 1, size, size], "FP64", np.float64, "data-type")):
        tensor = grpcclient.InferInput("image", shape, dtype)
        tensor.set_data_from_numpy(np.zeros(shape, numpy_type))
        with pytest.raises(InferenceServerException, match=message):
            client.infer("cosa_edge", [tensor])
    tensor = grpcclient.InferInput("image", [1, 1, size, size], "FP32")
    tensor.set_data_from_numpy(np.full((1, 1, size, size), 128, np.float32))
    assert client.infer("cosa_edge", [tensor]).as_numpy("class_probabilities").shape == (1, 2)
    client.close()


def _records(path: Path) -> list[dict]:
    return [{k: v for k, v in json.loads(line).items() if k != "latency_ms"}
            for line in path.read_text().splitlines()[1:]]


def _same(a: object, b: object) -> bool:
    """Equal, floats to 1e-4: the server may batch frames differently from the local run."""
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-4, abs_tol=1e-4)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def test_infer_through_the_server_writes_what_the_local_engine_writes(server: RunningServer, exported_onnx: Path,
                                                                      tmp_path: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(cli, ["phantom", "--out", str(tmp_path / "ph"), "--count", "2", "--size", "64", "--frames",
                               "30", "--frame-size", "240x320"]).exit_code == 0
    video = str(tmp_path / "ph" / "sweep.mp4")
    local = runner.invoke(cli, ["infer", "--video", video, "--engine", str(exported_onnx), "--out",
                                str(tmp_path / "local.mp4"), "--results", str(tmp_path / "local.jsonl")])
    remote = runner.invoke(cli, ["infer", "--video", video, "--server", server.address, "--in-flight", "6", "--out",
                                 str(tmp_path / "remote.mp4"), "--results", str(tmp_path / "remote.jsonl")])
    assert local.exit_code == 0 and remote.exit_code == 0, (local.output, remote.output)
    local_records, remote_records = _records(tmp_path / "local.jsonl"), _records(tmp_path / "remote.jsonl")
    assert len(remote_records) == 30 and {r["status"] for r in local_records} >= {"lesion", "no_lesion"}
    assert all(_same(a, b) for a, b in zip(remote_records, local_records)), "the server's frames differ"
    header = json.loads((tmp_path / "remote.jsonl").read_text().splitlines()[0])
    assert header["backend"] == "triton" and header["engine"] == f"cosa_edge@{server.address}"
    # The annotated videos: the same frames, drawn the same way.
    import cv2

    def frames_of(path: Path) -> list[np.ndarray]:
        capture, frames = cv2.VideoCapture(str(path)), []
        while (frame := capture.read()[1]) is not None:
            frames.append(frame.astype(np.int16))
        return frames
    local_frames, remote_frames = frames_of(tmp_path / "local.mp4"), frames_of(tmp_path / "remote.mp4")
    assert len(local_frames) == len(remote_frames) == 30
    assert max(np.abs(a - b).mean() for a, b in zip(local_frames, remote_frames)) < 0.5


def test_the_load_test_counts_every_request(server: RunningServer, exported_onnx: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["bench", "--server", server.address, "--engine", str(exported_onnx),
                                      "--concurrency", "1,4", "--duration", "1.5", "--iterations", "5",
                                      "--report", str(tmp_path / "load")])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "load" / "report.json").read_text())
    assert [level["concurrency"] for level in report["load"]] == [1, 4]
    for level in report["load"]:
        assert level["sent"] == level["answered"] + level["errors"] and level["errors"] == 0 and level["answered"] > 0
        assert level["latency_ms"]["count"] == level["answered"] and level["throughput"] > 0
    assert [r["batch_size"] for r in report["local"]] == [1, 8]  # the engine alone, at 1 and the server's maximum
    assert "| 4 |" in (tmp_path / "load" / "report.md").read_text()


def test_an_unreachable_server_or_unknown_model_gets_one_clear_message(server: RunningServer, tmp_path: Path) -> None:
    (closed,) = free_ports(1)
    with pytest.raises(CosaEdgeError, match="no Triton server answers at 127.0.0.1"):
        TritonServerEngine(f"127.0.0.1:{closed}")
    with pytest.raises(CosaEdgeError, match="no model 'other' ready"):
        TritonServerEngine(server.address, model="other")
    with pytest.raises(CosaEdgeError, match="HOST:PORT"):
        TritonServerEngine("localhost")
    result = CliRunner().invoke(cli, ["bench", "--server", f"127.0.0.1:{closed}", "--report", str(tmp_path / "r")])
    assert result.exit_code != 0 and "no Triton server answers" in result.output and not (tmp_path / "r").exists()


def test_sigterm_drains_in_flight_requests_stops_cleanly_and_frees_the_ports(server_env: Path, exported_onnx: Path,
                                                                             tmp_path: Path) -> None:
    import tritonclient.grpc as grpcclient

    running = RunningServer(exported_onnx, tmp_path / "triton.log")
    client = grpcclient.InferenceServerClient(running.address)
    size = int(client.get_model_config("cosa_edge", as_json=True)["config"]["input"][0]["dims"][-1])
    answers: dict[int, object] = {}
    tensor = grpcclient.InferInput("image", [1, 1, size, size], "FP32")
    tensor.set_data_from_numpy(np.full((1, 1, size, size), 90, np.float32))
    for index in range(300):  # queued in the server when the signal comes
        client.async_infer("cosa_edge", [tensor],
                           lambda result, error, i=index: answers.__setitem__(i, error or result),
                           client_timeout=30)
    took = running.stop()
    deadline = time.monotonic() + 10  # the last answers' callbacks run on the client's threads
    while len(answers) < 300 and time.monotonic() < deadline:
        time.sleep(0.05)
    client.close()
    assert running.process.returncode == 0, "".join(running.output)
    # Triton said it waited for requests in flight, and every one of them was answered, none failed.
    assert "in-flight inferences" in running.log.read_text()
    assert len(answers) == 300 and not [a for a in answers.values() if isinstance(a, Exception)]
    assert took < STOP_TIMEOUT_S  # a behaviour bound (it drains, it does not hang), not a speed claim
    for port in (running.http, running.grpc, running.metrics):  # nothing of the server is left listening
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(("127.0.0.1", port))


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl makes the test's certificate")
def test_tls_serves_grpc_encrypted_to_a_client_that_trusts_the_certificate(server_env: Path, exported_onnx: Path,
                                                                           tmp_path: Path) -> None:
    cert, key = tmp_path / "server.pem", tmp_path / "server.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    running = RunningServer(exported_onnx, tmp_path / "triton.log", "--tls-cert", str(cert), "--tls-key", str(key))
    try:
        with TritonServerEngine(running.address, tls_ca=cert) as remote:
            size = remote.input_size
            assert remote.infer(np.full((2, 1, size, size), 100, np.float32))["class_probabilities"].shape == (2, 2)
        with pytest.raises(CosaEdgeError, match="no Triton server answers"):  # in clear, the TLS server refuses it
            TritonServerEngine(running.address)
    finally:
        running.stop()


def test_serve_refuses_bad_options_before_starting_anything(exported_onnx: Path, tmp_path: Path) -> None:
    http, grpc, metrics = free_ports(3)
    base = ServeOptions(engine=exported_onnx, http_port=http, grpc_port=grpc, metrics_port=metrics)
    with pytest.raises(CosaEdgeError, match="in clear; give --tls-cert and --tls-key"):
        check_options(ServeOptions(**{**base.__dict__, "host": "0.0.0.0"}))
    with pytest.raises(CosaEdgeError, match="needs both --tls-cert and --tls-key"):
        check_options(ServeOptions(**{**base.__dict__, "tls_cert": exported_onnx}))
    with pytest.raises(CosaEdgeError, match="does not exist"):
        check_options(ServeOptions(**{**base.__dict__, "engine": tmp_path / "missing.onnx"}))
    (tmp_path / "model.engine").write_bytes(b"plan")
    with pytest.raises(CosaEdgeError, match="runs ONNX engines"):
        check_options(ServeOptions(**{**base.__dict__, "engine": tmp_path / "model.engine"}))
    import onnx

    bare = onnx.load(str(exported_onnx))
    del bare.metadata_props[:]
    onnx.save(bare, str(tmp_path / "bare.onnx"))
    with pytest.raises(CosaEdgeError, match="not a cosa-edge model"):
        check_options(ServeOptions(**{**base.__dict__, "engine": tmp_path / "bare.onnx"}))
    (tmp_path / "plain.onnx").write_bytes(b"not onnx at all")
    with pytest.raises(CosaEdgeError, match="not a readable ONNX model"):
        check_options(ServeOptions(**{**base.__dict__, "engine": tmp_path / "plain.onnx"}))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(cli, ["serve", "--engine", str(exported_onnx), "--grpc-port", str(port),
                                          "--http-port", str(base.http_port), "--metrics-port", str(base.metrics_port)])
    assert result.exit_code != 0
    assert f"port {port} on 127.0.0.1 is in use" in result.output and "--grpc-port" in result.output
    check_options(ServeOptions(**{**base.__dict__, "host": "0.0.0.0", "insecure": True}))  # said explicitly: allowed


def test_the_server_environment_is_never_made_over_someone_s_files(tmp_path: Path) -> None:
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "keep.txt").write_text("not an environment")
    with pytest.raises(CosaEdgeError, match="is not a Python environment"):
        ensure_server_env(folder)
    assert (folder / "keep.txt").read_text() == "not an environment"
