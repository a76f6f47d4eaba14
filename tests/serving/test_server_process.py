"""`maskwatch serve` as a process: HTTP health and metrics, gRPC, graceful SIGTERM."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import grpc
import keras
import numpy as np
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from schemas.model_server.tensors import fill_tensor, from_tensor_proto
from serving.export import export_model


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def http_get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_serve_command_answers_reports_health_and_stops_on_sigterm(
    tmp_path: Path, tiny: Any, tiny_model: keras.Model
) -> None:
    export_model(tiny_model, tmp_path, tiny.name, 1)
    grpc_port, http_port = free_port(), free_port()
    command = [
        sys.executable, "-c", "from workers.cli import main; main()", "serve",
        "--model-base", str(tmp_path), "--model-name", tiny.name, "--host", "127.0.0.1",
        "--port", str(grpc_port), "--runtime-health-port", str(http_port), "--poll-s", "0.2",
    ]  # fmt: skip
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, log.read_text()[-3000:]
            try:
                if http_get(f"http://127.0.0.1:{http_port}/readyz")[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "server never became ready"
            time.sleep(0.2)
        assert http_get(f"http://127.0.0.1:{http_port}/healthz")[0] == 200

        request = predict_pb2.PredictRequest()
        request.model_spec.name = tiny.name
        fill_tensor(request.inputs["crops"], tiny.crops(3))
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            response = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(
                request, timeout=10
            )
        assert response.model_spec.version.value == 1
        status, metrics = http_get(f"http://127.0.0.1:{http_port}/metrics")
        assert status == 200
        assert 'maskwatch_model_server_requests_total{code="OK",method="Predict"} 1.0' in metrics
        assert "maskwatch_model_server_version 1.0" in metrics

        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert '"event": "stopped"' in log.read_text()


ACCEPTED_S = 0.5
"""A call sent this long before SIGTERM has reached the server on localhost (connected)."""


def test_sigterm_mid_rpc_finishes_calls_in_flight_and_exits_0(
    tmp_path: Path, tiny: Any, tiny_model: keras.Model
) -> None:
    """Under load, with calls held in the batcher (500 ms batch window), SIGTERM: every call
    the server had accepted completes with the right answer, later ones are refused as
    UNAVAILABLE (never cut off with another code), and the process exits 0."""
    export_model(tiny_model, tmp_path, tiny.name, 1)
    grpc_port, http_port = free_port(), free_port()
    command = [
        sys.executable, "-c", "from workers.cli import main; main()", "serve",
        "--model-base", str(tmp_path), "--model-name", tiny.name, "--host", "127.0.0.1",
        "--port", str(grpc_port), "--runtime-health-port", str(http_port), "--poll-s", "0.2",
        "--batch-timeout-ms", "500", "--max-batch-size", "4096", "--grace-s", "20",
    ]  # fmt: skip
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    crops = tiny.crops(4)
    want = tiny.expected(tiny_model, crops)
    request = predict_pb2.PredictRequest()
    request.model_spec.name = tiny.name
    fill_tensor(request.inputs["crops"], crops)
    calls: list[tuple[float, float, str]] = []  # (started, ended, outcome: a code name)
    stop = threading.Event()

    def client() -> None:
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            while not stop.is_set():
                started = time.monotonic()
                try:
                    reply = stub.Predict(request, timeout=30)
                except grpc.RpcError as error:
                    calls.append((started, time.monotonic(), error.code().name))
                    continue
                got = from_tensor_proto(reply.outputs["probabilities"])
                right = np.allclose(got, want, atol=1e-5)
                calls.append((started, time.monotonic(), "OK" if right else "WRONG_ANSWER"))

    try:
        wait_ready(process, http_port, log)
        threads = [threading.Thread(target=client, daemon=True) for _ in range(6)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 60
        while sum(code == "OK" for *_, code in calls) < 12:
            assert time.monotonic() < deadline, "no load reached the server"
            time.sleep(0.05)
        signalled = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0, log.read_text()[-3000:]
        stop.set()
        for thread in threads:
            thread.join(40)
    finally:
        stop.set()
        if process.poll() is None:
            process.kill()
            process.wait()
    in_flight = [code for started, ended, code in calls if started < signalled < ended]
    assert "OK" in in_flight, "no call was mid-RPC at the signal"
    assert {code for *_, code in calls} <= {"OK", "UNAVAILABLE"}
    # a call sent well before the signal was accepted, so it must have been answered
    assert all(code == "OK" for started, _, code in calls if started < signalled - ACCEPTED_S)


def wait_ready(process: subprocess.Popen[bytes], http_port: int, log: Path) -> None:
    deadline = time.monotonic() + 120
    while True:
        assert process.poll() is None, log.read_text()[-3000:]
        try:
            if http_get(f"http://127.0.0.1:{http_port}/readyz")[0] == 200:
                return
        except OSError:
            pass
        assert time.monotonic() < deadline, "server never became ready"
        time.sleep(0.2)
