"""The classifier client the detector workers use: TF Serving's gRPC API, nothing more.

It speaks only the public PredictionService / ModelService protocol, so it works unchanged
against the official TensorFlow Serving and against `maskwatch serve`. One long-lived
channel per process (gRPC multiplexes calls over it and reconnects by itself); a deadline on
every call, so a stuck server never stalls a worker; a semaphore bounding requests in
flight, so a slow server pushes back on the caller instead of piling up calls; retries with
exponential backoff and jitter on UNAVAILABLE, DEADLINE_EXCEEDED and RESOURCE_EXHAUSTED
(restarts, version swaps, full queues), and no retry on anything else (a bad request stays
bad). Large batches are sent in chunks of at most `max_batch` crops.

The messages are our own wire-compatible ones (`schemas.model_server.wire`) on TF Serving's
fixed method paths, so the detector imports no TensorFlow.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import grpc
import numpy as np
import numpy.typing as npt
from prometheus_client import Counter

from runtime.backoff import Backoff, BackoffPolicy
from schemas.model_server import (
    CLASSES,
    GET_MODEL_STATUS_METHOD,
    INPUT,
    MODEL_NAME,
    OUTPUT,
    PREDICT_METHOD,
    SIGNATURE,
    wire,
)
from schemas.model_server.tensors import TensorError, fill_tensor, from_tensor_proto

Probabilities = npt.NDArray[np.float32]
RETRIES = Counter(
    "maskwatch_model_client_retries_total", "Model server calls retried, by status.", ["code"]
)


@runtime_checkable
class Classifier(Protocol):
    """What the detector needs from the mask classifier, wherever it runs."""

    def classify(self, crops_rgb_uint8: npt.NDArray[np.uint8]) -> Probabilities:
        """[N, S, S, 3] uint8 RGB crops → [N, classes] float32 probabilities."""
        ...

    @property
    def model_version(self) -> int | None:
        """Version that answered the last call (None before the first one)."""
        ...

    def ready(self) -> bool:
        """True when a model version is loaded and can answer now."""
        ...


class ClassifierError(RuntimeError):
    """Classification failed for good: a non-retryable status or retries exhausted."""

    def __init__(self, code: grpc.StatusCode | None, message: str) -> None:
        super().__init__(f"{code.name if code else 'ERROR'}: {message}")
        self.code = code


@dataclass(frozen=True)
class ClientConfig:
    """Where the model server is and how patiently to call it."""

    target: str = "127.0.0.1:8500"
    model_name: str = MODEL_NAME
    signature_name: str = SIGNATURE
    input_name: str = INPUT
    output_name: str = OUTPUT
    num_classes: int = len(CLASSES)
    deadline_s: float = 5.0
    """Deadline of one call (one attempt)."""
    max_in_flight: int = 8
    max_batch: int = 64
    """Crops per request; larger inputs are sent as several requests."""
    max_attempts: int = 4
    backoff_initial_s: float = 0.05
    backoff_max_s: float = 2.0
    max_message_mb: int = 64

    def __post_init__(self) -> None:
        positive = {
            "deadline_s": self.deadline_s,
            "max_in_flight": self.max_in_flight,
            "max_batch": self.max_batch,
            "max_attempts": self.max_attempts,
            "num_classes": self.num_classes,
            "backoff_initial_s": self.backoff_initial_s,
            "max_message_mb": self.max_message_mb,
        }
        bad = [name for name, value in positive.items() if not value > 0]
        if bad or self.backoff_max_s < self.backoff_initial_s:
            raise ValueError(f"ClientConfig: {bad or 'backoff_max_s'} out of range: {self}")


RETRYABLE = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    }
)


class GrpcClassifier:
    """`Classifier` over the TensorFlow Serving gRPC API; thread-safe, one per process."""

    def __init__(self, config: ClientConfig, sleep: Callable[[float], None] = time.sleep) -> None:
        self.config = config
        limit = config.max_message_mb * 1024 * 1024
        self._channel = grpc.insecure_channel(
            config.target,
            options=[
                ("grpc.max_send_message_length", limit),
                ("grpc.max_receive_message_length", limit),
                ("grpc.keepalive_time_ms", 30_000),
                ("grpc.enable_retries", 0),  # retries are ours, with our backoff
            ],
        )
        self._predict = self._channel.unary_unary(
            PREDICT_METHOD,
            request_serializer=_serialize,
            response_deserializer=wire.PredictResponse.FromString,
        )
        self._model_status = self._channel.unary_unary(
            GET_MODEL_STATUS_METHOD,
            request_serializer=_serialize,
            response_deserializer=wire.GetModelStatusResponse.FromString,
        )
        self._slots = threading.BoundedSemaphore(config.max_in_flight)
        self._sleep = sleep
        self._version: int | None = None

    @property
    def model_version(self) -> int | None:
        return self._version

    def classify(self, crops_rgb_uint8: npt.NDArray[np.uint8]) -> Probabilities:
        crops = np.asarray(crops_rgb_uint8)
        if crops.dtype != np.uint8 or crops.ndim != 4 or crops.shape[-1] != 3:
            raise ValueError(f"expected [N, S, S, 3] uint8 crops, got {crops.dtype} {crops.shape}")
        if len(crops) == 0:
            return np.zeros((0, self.config.num_classes), np.float32)
        step = self.config.max_batch
        parts = [self._classify_chunk(crops[i : i + step]) for i in range(0, len(crops), step)]
        return np.concatenate(parts)

    def ready(self) -> bool:
        """Ask ModelService whether any version of the model is AVAILABLE."""
        request = wire.GetModelStatusRequest()
        request.model_spec.name = self.config.model_name
        try:
            response: wire.GetModelStatusResponseMessage = self._model_status(
                request, timeout=self.config.deadline_s
            )
        except grpc.RpcError:
            return False
        return any(s.state == wire.VersionState.AVAILABLE for s in response.model_version_status)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> GrpcClassifier:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _classify_chunk(self, crops: npt.NDArray[np.uint8]) -> Probabilities:
        request = wire.PredictRequest()
        request.model_spec.name = self.config.model_name
        request.model_spec.signature_name = self.config.signature_name
        fill_tensor(request.inputs[self.config.input_name], crops)
        request.output_filter.append(self.config.output_name)
        response = self._call(request)
        try:
            probabilities = from_tensor_proto(response.outputs[self.config.output_name])
        except (KeyError, TensorError) as error:
            raise ClassifierError(None, f"malformed response: {error}") from None
        if probabilities.shape != (len(crops), self.config.num_classes):
            raise ClassifierError(
                None,
                f"response shape {probabilities.shape}, expected "
                f"{(len(crops), self.config.num_classes)}",
            )
        if response.model_spec.HasField("version"):
            self._version = int(response.model_spec.version.value)
        return probabilities.astype(np.float32, copy=False)

    def _call(self, request: wire.PredictRequestMessage) -> wire.PredictResponseMessage:
        """One Predict with a bounded slot, a deadline per attempt, backoff between them."""
        config = self.config
        if not self._slots.acquire(timeout=config.deadline_s):
            raise ClassifierError(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"{config.max_in_flight} requests already in flight for {config.deadline_s}s",
            )
        backoff = Backoff(
            BackoffPolicy(
                initial_s=config.backoff_initial_s,
                max_s=config.backoff_max_s,
                jitter=0.5,
                max_attempts=config.max_attempts,
            )
        )
        try:
            while True:
                try:
                    response: wire.PredictResponseMessage = self._predict(
                        request, timeout=config.deadline_s
                    )
                    return response
                except grpc.RpcError as error:
                    code = error.code()
                    delay = backoff.next_delay() if code in RETRYABLE else None
                    if delay is None:
                        raise ClassifierError(code, str(error.details())) from None
                    RETRIES.labels(code.name).inc()
                    self._sleep(delay)
        finally:
            self._slots.release()


def _serialize(message: wire.Message) -> bytes:
    return message.SerializeToString()


class FakeClassifier:
    """In-memory `Classifier` for unit tests of code that uses one (no gRPC, no model).

    Default rule: the with_mask probability is the crop's mean brightness / 255, so tests
    can pick the answer with the pixels they send. `fail_with` makes every call raise.
    """

    def __init__(
        self,
        rule: Callable[[npt.NDArray[np.uint8]], Probabilities] | None = None,
        version: int = 1,
        ready: bool = True,
        fail_with: Exception | None = None,
    ) -> None:
        self._rule = rule or _brightness_rule
        self._version = version
        self._ready = ready
        self.fail_with = fail_with
        self.batches: list[int] = []
        """Size of every batch classified, in call order."""

    @property
    def model_version(self) -> int | None:
        return self._version if self.batches else None

    def classify(self, crops_rgb_uint8: npt.NDArray[np.uint8]) -> Probabilities:
        if self.fail_with is not None:
            raise self.fail_with
        if crops_rgb_uint8.dtype != np.uint8 or crops_rgb_uint8.ndim != 4:
            raise ValueError(f"expected [N, S, S, 3] uint8, got {crops_rgb_uint8.shape}")
        self.batches.append(len(crops_rgb_uint8))
        return self._rule(crops_rgb_uint8)

    def ready(self) -> bool:
        return self._ready


def _brightness_rule(crops: npt.NDArray[np.uint8]) -> Probabilities:
    with_mask = crops.reshape(len(crops), -1).mean(axis=1, dtype=np.float32) / 255.0
    return np.stack([with_mask, 1.0 - with_mask], axis=1).astype(np.float32)
