"""The detector's classifier client: against `maskwatch serve` and against a scripted
PredictionService (anything that speaks the TF Serving API), plus the in-memory fake."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from typing import Any

import grpc
import keras
import numpy as np
import pytest
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from schemas.model_server.tensors import fill_tensor, from_tensor_proto
from serving.server import ModelServer
from workers.detector.classifier import (
    Classifier,
    ClassifierError,
    ClientConfig,
    FakeClassifier,
    GrpcClassifier,
)


def client_for(port: int, sleeps: list[float] | None = None, **config: Any) -> GrpcClassifier:
    record = sleeps.append if sleeps is not None else (lambda _s: None)
    return GrpcClassifier(
        ClientConfig(target=f"127.0.0.1:{port}", model_name="tiny", **config), sleep=record
    )


def test_classify_matches_the_model_and_reports_the_version(
    server: ModelServer, tiny: Any, tiny_model: keras.Model
) -> None:
    crops = tiny.crops(7, seed=5)
    with client_for(server.port, max_batch=3) as client:
        assert isinstance(client, Classifier)
        assert client.model_version is None
        probabilities = client.classify(crops)
        assert client.model_version == 1
        assert client.ready()
        empty = client.classify(np.zeros((0, tiny.px, tiny.px, 3), np.uint8))
    assert probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities, tiny.expected(tiny_model, crops), atol=1e-6)
    assert empty.shape == (0, 2)


def test_config_out_of_range_is_refused() -> None:
    with pytest.raises(ValueError, match="max_in_flight"):
        ClientConfig(max_in_flight=0)
    with pytest.raises(ValueError, match="backoff_max_s"):
        ClientConfig(backoff_initial_s=1.0, backoff_max_s=0.5)


def test_bad_input_is_refused_before_any_call(server: ModelServer, tiny: Any) -> None:
    with client_for(server.port) as client, pytest.raises(ValueError, match="uint8"):
        client.classify(tiny.crops(2).astype(np.float32))


def test_not_found_is_not_retried(server: ModelServer, tiny: Any) -> None:
    sleeps: list[float] = []
    with GrpcClassifier(
        ClientConfig(target=f"127.0.0.1:{server.port}", model_name="nope"), sleep=sleeps.append
    ) as client:
        with pytest.raises(ClassifierError) as caught:
            client.classify(tiny.crops(1))
        assert client.ready() is False
    assert caught.value.code == grpc.StatusCode.NOT_FOUND
    assert sleeps == []


def test_unavailable_is_retried_with_growing_backoff_then_given_up(
    tmp_path: Any, tiny: Any
) -> None:
    sleeps: list[float] = []
    with (
        tiny.serve(tmp_path, wait_version=None) as empty_server,
        client_for(empty_server.port, sleeps, max_attempts=4, backoff_initial_s=0.1) as client,
    ):
        with pytest.raises(ClassifierError) as caught:
            client.classify(tiny.crops(1))
        assert client.ready() is False
    assert caught.value.code == grpc.StatusCode.UNAVAILABLE
    assert len(sleeps) == 3
    for attempt, slept in enumerate(sleeps):
        ceiling = 0.1 * 2**attempt
        assert ceiling / 2 <= slept <= ceiling


def test_no_server_at_all_is_unavailable_and_not_ready(tiny: Any) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: connections are refused
        client = client_for(port, [], max_attempts=2, deadline_s=2.0)
        with client:
            assert client.ready() is False
            with pytest.raises(ClassifierError) as caught:
                client.classify(tiny.crops(1))
    assert caught.value.code == grpc.StatusCode.UNAVAILABLE


# ------------------------------------------------ a scripted TF Serving stand-in


class Scripted(prediction_service_pb2_grpc.PredictionServiceServicer):  # type: ignore[misc]
    """Answers like TF Serving (probabilities = mean pixel rule) after a scripted prelude."""

    def __init__(self, prelude: list[Callable[[grpc.ServicerContext], None]]) -> None:
        self.prelude = list(prelude)
        self.calls = 0
        self.in_flight = 0
        self.most_in_flight = 0
        self.lock = threading.Lock()
        self.hold = threading.Event()
        self.hold.set()

    def Predict(  # noqa: N802 - gRPC's method name
        self, request: predict_pb2.PredictRequest, context: grpc.ServicerContext
    ) -> predict_pb2.PredictResponse:
        with self.lock:
            self.calls += 1
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
            step = self.prelude.pop(0) if self.prelude else None
        try:
            if step is not None:
                step(context)
            self.hold.wait(10)
            crops = from_tensor_proto(request.inputs["crops"])
            p = crops.reshape(len(crops), -1).mean(axis=1).astype(np.float32) / 255
            response = predict_pb2.PredictResponse()
            response.model_spec.name = request.model_spec.name
            response.model_spec.version.value = 42
            fill_tensor(response.outputs["probabilities"], np.stack([p, 1 - p], 1))
            return response
        finally:
            with self.lock:
                self.in_flight -= 1


def unavailable(context: grpc.ServicerContext) -> None:
    context.abort(grpc.StatusCode.UNAVAILABLE, "restarting")


def slow(context: grpc.ServicerContext) -> None:
    time.sleep(1.0)


@pytest.fixture()
def scripted() -> Iterator[tuple[Scripted, int]]:
    servicer = Scripted([])
    grpc_server = grpc.server(futures.ThreadPoolExecutor(16))
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(servicer, grpc_server)
    port = grpc_server.add_insecure_port("127.0.0.1:0")
    grpc_server.start()
    yield servicer, port
    servicer.hold.set()
    grpc_server.stop(0).wait()


def test_recovers_after_unavailable_and_a_missed_deadline(
    scripted: tuple[Scripted, int], tiny: Any
) -> None:
    servicer, port = scripted
    servicer.prelude = [unavailable, slow, unavailable]
    sleeps: list[float] = []
    crops = tiny.crops(3)
    with client_for(port, sleeps, deadline_s=0.3, max_attempts=4) as client:
        probabilities = client.classify(crops)
        assert client.model_version == 42
    assert servicer.calls == 4
    assert len(sleeps) == 3
    expected = crops.reshape(3, -1).mean(axis=1) / 255
    np.testing.assert_allclose(probabilities[:, 0], expected, rtol=1e-5)


def test_requests_in_flight_are_bounded(scripted: tuple[Scripted, int], tiny: Any) -> None:
    servicer, port = scripted
    servicer.hold.clear()
    with (
        client_for(port, max_in_flight=2, deadline_s=10.0) as client,
        futures.ThreadPoolExecutor(6) as pool,
    ):
        results = [pool.submit(client.classify, tiny.crops(1, seed=i)) for i in range(6)]
        tiny.wait_for(lambda: servicer.in_flight == 2, "two calls in flight")
        time.sleep(0.3)  # give a third call the chance to (wrongly) get through
        assert servicer.in_flight == 2
        servicer.hold.set()
        assert all(r.result(10).shape == (1, 2) for r in results)
    assert servicer.most_in_flight == 2
    assert servicer.calls == 6


def test_a_caller_waiting_longer_than_the_deadline_for_a_slot_fails(
    scripted: tuple[Scripted, int], tiny: Any
) -> None:
    servicer, port = scripted
    servicer.hold.clear()
    # The first call keeps its slot through 4 attempts of 0.4 s (it is held by the server);
    # the second waits one deadline (0.4 s) for a slot, then gives up.
    with (
        client_for(port, max_in_flight=1, deadline_s=0.4, max_attempts=4) as client,
        futures.ThreadPoolExecutor(1) as pool,
    ):
        first = pool.submit(client.classify, tiny.crops(1))
        tiny.wait_for(lambda: servicer.in_flight == 1, "one call in flight")
        with pytest.raises(ClassifierError) as caught:
            client.classify(tiny.crops(1))
        servicer.hold.set()
        first.result(10)
    assert caught.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED


# ------------------------------------------------ the fake


def test_fake_classifier_follows_its_rule_and_records_batches() -> None:
    fake = FakeClassifier()
    assert isinstance(fake, Classifier)
    assert fake.model_version is None
    bright = np.full((2, 4, 4, 3), 255, np.uint8)
    dark = np.zeros((1, 4, 4, 3), np.uint8)
    np.testing.assert_allclose(fake.classify(bright), [[1, 0], [1, 0]])
    np.testing.assert_allclose(fake.classify(dark), [[0, 1]])
    assert fake.batches == [2, 1]
    assert fake.model_version == 1
    fake.fail_with = ClassifierError(grpc.StatusCode.UNAVAILABLE, "down")
    with pytest.raises(ClassifierError):
        fake.classify(dark)
    assert FakeClassifier(ready=False).ready() is False
