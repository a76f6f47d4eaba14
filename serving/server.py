"""`maskwatch serve`: the TensorFlow Serving gRPC API over SavedModels, for local use and CI.

Production runs the official TensorFlow Serving image on the same model folder; this server
implements the part of its API the detector workers use (PredictionService Predict and
GetModelMetadata, ModelService GetModelStatus) with the same messages and status codes, so
the client cannot tell them apart. NOT_FOUND: unknown model or version; INVALID_ARGUMENT:
unknown signature or output, wrong input name, dtype or shape; UNAVAILABLE: no version
loaded yet or the batch queue is full (clients retry those with backoff).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent import futures
from pathlib import Path
from typing import Any, Literal, TypeVar

import click
import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from prometheus_client import Counter, Histogram
from pydantic import Field
from pydantic_settings import SettingsConfigDict
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from runtime.cpus import cpu_share
from runtime.logs import configure_logging, get_logger
from runtime.service import Health, ServiceRuntime
from runtime.settings import (
    RuntimeSettings,
    ServiceSettings,
    load_settings,
    runtime_section,
    settings_options,
)
from schemas.model_server import MODEL_NAME, SIGNATURE
from schemas.model_server.tensors import (
    TensorError,
    declared_bytes,
    fill_tensor,
    from_tensor_proto,
    shape_of,
)
from serving.batching import BatcherClosedError, QueueFullError
from serving.runtimes import RUNTIMES, RuntimeConfig
from serving.servable import BatchConfig, ModelWatcher, RpcError, Servable

log = get_logger("model_server")

REQUESTS = Counter(
    "maskwatch_model_server_requests_total",
    "gRPC requests by method and status.",
    ["method", "code"],
)
LATENCY = Histogram(
    "maskwatch_model_server_request_seconds",
    "gRPC request latency by method.",
    ["method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
PREDICTION_SERVICE = "tensorflow.serving.PredictionService"
MAX_WAIT_S = 60.0
"""Upper bound on waiting for a batch result when the caller set no deadline."""


class ServeSettings(ServiceSettings):
    """Model server options (env prefix MASKWATCH_SERVE_)."""

    model_config = SettingsConfigDict(env_prefix="MASKWATCH_SERVE_")

    model_base: Path = Field(Path("var/models"), description="Folder holding <name>/<version>/.")
    model_name: str = Field(
        MODEL_NAME, pattern=r"^[A-Za-z0-9_.-]+$", description="Model name served."
    )
    host: str = Field("0.0.0.0", min_length=1, description="gRPC bind address.")
    port: int = Field(8500, ge=0, le=65535, description="gRPC port (0: any free port).")
    runtime: RuntimeSettings = runtime_section(9100)
    poll_s: float = Field(2.0, gt=0, le=60, description="Seconds between new-version checks.")
    max_batch_size: int = Field(32, ge=1, le=4096, description="Most crops per model call.")
    batch_timeout_ms: float = Field(
        2.0, ge=0, le=1000, description="Longest wait for a batch to fill."
    )
    max_queued: int = Field(256, ge=1, le=100_000, description="Requests waiting for a batch.")
    batch_threads: int = Field(1, ge=1, le=64, description="Threads running model calls.")
    grpc_threads: int = Field(32, ge=1, le=1024, description="gRPC handler threads.")
    inference_runtime: Literal["auto", *RUNTIMES] = Field(  # type: ignore[valid-type]
        "tensorflow",
        description="tensorflow or openvino-fp32|bf16|int8; auto: the fastest export measured.",
    )
    inference_threads: int | None = Field(
        None, ge=1, le=256, description="Threads per model call (default: the CPU share)."
    )
    max_message_mb: int = Field(64, ge=4, le=2047, description="gRPC message size limit (MiB).")
    max_request_rows: int = Field(
        1024, ge=1, le=1_000_000, description="Most rows (crops) one Predict request may declare."
    )
    max_request_mb: int = Field(
        64, ge=1, le=16384, description="Most MiB a request's decoded inputs may declare."
    )
    grace_s: float = Field(10.0, ge=0, le=600, description="Drain time for in-flight calls.")

    @property
    def runtime_config(self) -> RuntimeConfig:
        return RuntimeConfig(self.inference_runtime, self.inference_threads or cpu_share())

    @property
    def batching(self) -> BatchConfig:
        return BatchConfig(
            self.max_batch_size, self.batch_timeout_ms / 1000, self.max_queued, self.batch_threads
        )


Reply = TypeVar("Reply")


def _rpc(method: str, body: Callable[..., Reply]) -> Callable[..., Reply]:
    """Wrap a handler: RpcError → its status code; count and time every call."""

    def handler(self: Any, request: Any, context: grpc.ServicerContext) -> Reply:
        started = time.perf_counter()
        code = grpc.StatusCode.OK
        try:
            return body(self, request, context)
        except RpcError as error:
            code = error.code
            context.abort(error.code, error.message)
        except Exception as error:
            code = grpc.StatusCode.INTERNAL
            log.exception("rpc_failed", method=method)
            context.abort(grpc.StatusCode.INTERNAL, f"{type(error).__name__}: {error}")
        finally:
            REQUESTS.labels(method, code.name).inc()
            LATENCY.labels(method).observe(time.perf_counter() - started)
        raise AssertionError("unreachable: context.abort raises")

    return handler


class _Api(
    prediction_service_pb2_grpc.PredictionServiceServicer,  # type: ignore[misc]
    model_service_pb2_grpc.ModelServiceServicer,  # type: ignore[misc]
):
    """The servicers: translate protos to calls on the watcher's current servable."""

    def __init__(self, watcher: ModelWatcher, max_rows: int, max_bytes: int) -> None:
        self._watcher = watcher
        self._max_rows, self._max_bytes = max_rows, max_bytes

    def _check_declared(self, request: predict_pb2.PredictRequest) -> None:
        """Refuse, before decoding, inputs whose declared rows or bytes exceed the limits:
        too many rows is a bad request (INVALID_ARGUMENT), too many bytes is more than this
        server will hold for one request (RESOURCE_EXHAUSTED)."""
        total = 0
        for name, proto in request.inputs.items():
            shape = shape_of(proto)
            if shape and shape[0] > self._max_rows:
                raise RpcError(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"input {name!r} declares {shape[0]} rows (max {self._max_rows})",
                )
            total += declared_bytes(proto)
        if total > self._max_bytes:
            raise RpcError(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"inputs declare {total} bytes (max {self._max_bytes})",
            )

    def _resolve(self, spec: model_pb2.ModelSpec) -> Servable:
        if spec.name != self._watcher.name:
            raise RpcError(grpc.StatusCode.NOT_FOUND, f"model {spec.name!r} is not served")
        servable = self._watcher.current
        if servable is None:
            raise RpcError(
                grpc.StatusCode.UNAVAILABLE, f"no version of {spec.name!r} is loaded yet"
            )
        if spec.HasField("version") and spec.version.value != servable.version:
            raise RpcError(
                grpc.StatusCode.NOT_FOUND,
                f"version {spec.version.value} of {spec.name!r} is not loaded "
                f"(serving {servable.version})",
            )
        if spec.version_label:
            raise RpcError(
                grpc.StatusCode.NOT_FOUND, f"version label {spec.version_label!r} is not defined"
            )
        return servable

    def _predict(
        self, request: predict_pb2.PredictRequest, context: grpc.ServicerContext
    ) -> predict_pb2.PredictResponse:
        key = request.model_spec.signature_name or SIGNATURE
        try:
            self._check_declared(request)
            inputs = {name: from_tensor_proto(t) for name, t in request.inputs.items()}
        except TensorError as error:
            raise RpcError(grpc.StatusCode.INVALID_ARGUMENT, str(error)) from None
        remaining = context.time_remaining()
        timeout = MAX_WAIT_S if remaining is None else min(remaining, MAX_WAIT_S)
        for _ in range(2):  # once more if the version was swapped between resolve and submit
            servable = self._resolve(request.model_spec)
            signature = servable.signatures.get(key)
            if signature is None:
                raise RpcError(
                    grpc.StatusCode.INVALID_ARGUMENT, f"serving signature {key!r} not found"
                )
            wanted = list(request.output_filter) or list(signature.outputs)
            unknown = sorted(set(wanted) - set(signature.outputs))
            if unknown:
                raise RpcError(
                    grpc.StatusCode.INVALID_ARGUMENT, f"unknown outputs in filter: {unknown}"
                )
            signature.validate(inputs)
            try:
                outputs = servable.predict(key, inputs, context.is_active, timeout)
                break
            except BatcherClosedError:
                continue
            except QueueFullError as error:
                raise RpcError(grpc.StatusCode.UNAVAILABLE, str(error)) from None
            except futures.TimeoutError:
                raise RpcError(grpc.StatusCode.DEADLINE_EXCEEDED, "no result in time") from None
            except futures.CancelledError:
                raise RpcError(grpc.StatusCode.CANCELLED, "request abandoned") from None
        else:
            raise RpcError(grpc.StatusCode.UNAVAILABLE, "model version is being swapped")
        response = predict_pb2.PredictResponse()
        response.model_spec.name = servable.name
        response.model_spec.version.value = servable.version
        response.model_spec.signature_name = key
        for name in wanted:
            fill_tensor(response.outputs[name], outputs[name])
        return response

    def _metadata(
        self, request: get_model_metadata_pb2.GetModelMetadataRequest, _context: object
    ) -> get_model_metadata_pb2.GetModelMetadataResponse:
        servable = self._resolve(request.model_spec)
        fields = set(request.metadata_field)
        if fields != {"signature_def"}:
            raise RpcError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"metadata_field must be ['signature_def'], got {sorted(fields)}",
            )
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = servable.name
        response.model_spec.version.value = servable.version
        signatures = get_model_metadata_pb2.SignatureDefMap()
        for key, proto in servable.signature_defs.items():
            signatures.signature_def[key].CopyFrom(proto)
        response.metadata["signature_def"].Pack(signatures)
        return response

    def _status(
        self, request: get_model_status_pb2.GetModelStatusRequest, _context: object
    ) -> get_model_status_pb2.GetModelStatusResponse:
        spec = request.model_spec
        if spec.name != self._watcher.name:
            raise RpcError(grpc.StatusCode.NOT_FOUND, f"model {spec.name!r} is not served")
        states = self._watcher.status()
        if spec.HasField("version"):
            if spec.version.value not in states:
                raise RpcError(
                    grpc.StatusCode.NOT_FOUND, f"version {spec.version.value} is not known"
                )
            states = {spec.version.value: states[spec.version.value]}
        if not states:
            raise RpcError(grpc.StatusCode.NOT_FOUND, f"no versions of {spec.name!r} found")
        response = get_model_status_pb2.GetModelStatusResponse()
        for version, status in sorted(states.items(), reverse=True):
            entry = response.model_version_status.add()
            entry.version = version
            entry.state = int(status.state)
            if status.error:
                entry.status.error_code = grpc.StatusCode.UNKNOWN.value[0]
                entry.status.error_message = status.error
        return response

    Predict = _rpc("Predict", _predict)
    GetModelMetadata = _rpc("GetModelMetadata", _metadata)
    GetModelStatus = _rpc("GetModelStatus", _status)


class ModelServer:
    """gRPC server + version watcher; `start()` returns at once, loading happens behind."""

    def __init__(self, settings: ServeSettings, health_flag: Health | None = None) -> None:
        self.settings = settings
        self.watcher = ModelWatcher(
            settings.model_base, settings.model_name, settings.batching, settings.runtime_config
        )
        self._health_flag = health_flag
        self._stopping = threading.Event()
        self._health = health.HealthServicer(experimental_non_blocking=True)
        limit = settings.max_message_mb * 1024 * 1024
        self._server = grpc.server(
            futures.ThreadPoolExecutor(settings.grpc_threads, thread_name_prefix="grpc"),
            options=[
                ("grpc.max_receive_message_length", limit),
                ("grpc.max_send_message_length", limit),
            ],
        )
        api = _Api(self.watcher, settings.max_request_rows, settings.max_request_mb * 1024 * 1024)
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(api, self._server)
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(api, self._server)
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._server)
        self._set_serving(False, "no version loaded yet")
        self.port = self._server.add_insecure_port(f"{settings.host}:{settings.port}")
        if self.port == 0:
            raise OSError(f"cannot bind {settings.host}:{settings.port}")
        self._watch_thread = futures.ThreadPoolExecutor(1, thread_name_prefix="watcher")

    def start(self) -> None:
        """Serve gRPC now; poll for versions every `poll_s` in a background thread."""
        self._server.start()
        log.info(
            "serving",
            port=self.port,
            model=self.settings.model_name,
            base=str(self.settings.model_base),
        )
        self._watch_thread.submit(self._watch)

    def _watch(self) -> None:
        while not self._stopping.is_set():
            try:
                self.watcher.poll()
            except Exception:  # keep watching: a transient FS error is not fatal
                log.exception("poll_failed")
            current = self.watcher.current
            self._set_serving(current is not None, "" if current else "no version loaded yet")
            self._stopping.wait(self.settings.poll_s)

    def _set_serving(self, serving: bool, reason: str) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for service in ("", PREDICTION_SERVICE):
            self._health.set(service, status)
        if self._health_flag is not None and not self._stopping.is_set():
            self._health_flag.beat()
            self._health_flag.set_ready(serving, reason)

    def stop(self, grace_s: float | None = None) -> None:
        """NOT_SERVING, finish in-flight calls within the grace period, unload."""
        self._stopping.set()  # no more version loads, and readiness stays off
        self._health.enter_graceful_shutdown()
        if self._health_flag is not None:
            self._health_flag.set_ready(False, "stopping")
        grace = self.settings.grace_s if grace_s is None else grace_s
        self._server.stop(grace).wait()
        self._watch_thread.shutdown(wait=True)
        self.watcher.close()
        log.info("stopped")


@click.command("serve")
@settings_options(ServeSettings)
def cli(**options: object) -> None:
    """Serve the newest SavedModel version over the TensorFlow Serving gRPC API."""
    settings = load_settings(ServeSettings, options)
    configure_logging(settings.runtime.log_level, settings.runtime.json_logs)
    runtime = ServiceRuntime("model-server", settings.runtime.health_port)
    runtime.install_signal_handlers()
    server = ModelServer(settings, runtime.health)
    server.start()
    while not runtime.stopping.wait(1.0):
        pass  # the watcher thread beats the liveness flag on every poll
    server.stop()
    runtime.close()
