"""`maskwatch serve` as a process: HTTP health and metrics, gRPC, graceful SIGTERM."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import grpc
import keras
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from schemas.model_server.tensors import fill_tensor
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
