"""One loaded model version and the watcher that swaps versions in and out.

The version's signatures come from its SavedModel; the model calls go to the runtime the
server was configured with (`serving.runtimes`: TensorFlow, or OpenVINO fp32 / bf16 / int8).

The watcher follows TF Serving's default policy: serve the highest numeric version under
`<base>/<name>/`. A new version is loaded and warmed up while the old one keeps answering,
then swapped in; the old one finishes its queued batches and is dropped. A version that
fails to load is logged and reported through GetModelStatus, and the previous version
stays in service (it is retried only when its folder changes).
"""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np
from prometheus_client import Counter, Gauge
from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2

from runtime.logs import get_logger
from schemas.model_server.tensors import DTYPES, dtype_name
from serving.batching import Arrays, Batcher
from serving.export import versions
from serving.runtimes import RuntimeConfig, RuntimeInputError, load_runtime

log = get_logger("servable")

LOADED_VERSION = Gauge("maskwatch_model_server_version", "Model version being served (0: none).")
LOAD_FAILURES = Counter(
    "maskwatch_model_server_load_failures_total", "Versions that failed to load."
)


class RpcError(Exception):
    """A request failure with the gRPC status code it must be answered with."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class BatchConfig:
    """Server-side batching limits (TF Serving's BatchingParameters, by meaning)."""

    max_batch_size: int = 32
    timeout_s: float = 0.002
    max_queued: int = 256
    threads: int = 1


@dataclass(frozen=True)
class Signature:
    """A signature's inputs and outputs as (dtype enum, shape with -1 for unknown dims)."""

    key: str
    inputs: dict[str, tuple[int, tuple[int, ...]]]
    outputs: dict[str, tuple[int, tuple[int, ...]]]

    @classmethod
    def from_proto(cls, key: str, proto: meta_graph_pb2.SignatureDef) -> Signature:
        def specs(infos: object) -> dict[str, tuple[int, tuple[int, ...]]]:
            return {
                name: (info.dtype, tuple(int(d.size) for d in info.tensor_shape.dim))
                for name, info in infos.items()  # type: ignore[attr-defined]
            }

        return cls(key, specs(proto.inputs), specs(proto.outputs))

    @property
    def batchable(self) -> bool:
        """Every tensor has a leading unknown (batch) dimension."""
        tensors = [*self.inputs.values(), *self.outputs.values()]
        return all(len(shape) >= 1 and shape[0] == -1 for _, shape in tensors)

    @property
    def fixed_row_shapes(self) -> bool:
        """Every output's non-batch dimensions are known (and its dtype is numeric)."""
        return all(
            dtype in DTYPES and min(shape[1:], default=1) >= 0
            for dtype, shape in self.outputs.values()
        )

    def validate(self, inputs: Arrays) -> None:
        """Raise INVALID_ARGUMENT unless `inputs` match names, dtypes and shapes exactly."""
        if set(inputs) != set(self.inputs):
            raise RpcError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"signature {self.key!r} takes inputs {sorted(self.inputs)}, got {sorted(inputs)}",
            )
        for name, (dtype, shape) in self.inputs.items():
            value = inputs[name]
            if value.dtype != DTYPES.get(dtype):
                raise RpcError(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"input {name!r} must be {dtype_name(dtype)}, got {value.dtype}",
                )
            if len(value.shape) != len(shape) or any(
                want not in (-1, got) for want, got in zip(shape, value.shape, strict=True)
            ):
                raise RpcError(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"input {name!r} must have shape {list(shape)} (-1: any), "
                    f"got {list(value.shape)}",
                )
        if self.batchable and len({v.shape[0] for v in inputs.values()}) > 1:
            raise RpcError(
                grpc.StatusCode.INVALID_ARGUMENT, "inputs disagree on the batch dimension"
            )


class Servable:
    """A loaded, warmed-up model version (one runtime) with its own batcher."""

    def __init__(
        self,
        name: str,
        version: int,
        path: Path,
        batching: BatchConfig,
        runtime: RuntimeConfig = RuntimeConfig(),  # noqa: B008 - frozen dataclass
    ) -> None:
        self.name, self.version, self.path = name, version, path
        self.runtime = load_runtime(path, runtime)
        proto = saved_model_pb2.SavedModel.FromString((path / "saved_model.pb").read_bytes())
        self.signature_defs = {
            key: sig
            for key, sig in proto.meta_graphs[0].signature_def.items()
            if key in self.runtime.keys
        }
        self.signatures = {k: Signature.from_proto(k, v) for k, v in self.signature_defs.items()}
        self._warm_up()
        self._batcher = Batcher(
            self.run,
            batching.max_batch_size,
            batching.timeout_s,
            batching.max_queued,
            batching.threads,
        )

    def run(self, key: str, inputs: Arrays) -> Arrays:
        """Call signature `key` in-process (no batching)."""
        try:
            return self.runtime.run(key, inputs)
        except RuntimeInputError as error:
            raise RpcError(grpc.StatusCode.INVALID_ARGUMENT, str(error)) from None

    def predict(
        self, key: str, inputs: Arrays, is_active: Callable[[], bool], timeout_s: float
    ) -> Arrays:
        """Run through the batcher when the signature allows it; may raise BatcherClosedError.

        An empty batch is answered without the model: some kernels (oneDNN batch norm in
        Xception) fail on zero rows, and the answer is known from the signature.
        """
        signature = self.signatures[key]
        if not signature.batchable:
            return self.run(key, inputs)
        if all(len(v) == 0 for v in inputs.values()) and signature.fixed_row_shapes:
            return {
                name: np.zeros((0, *shape[1:]), DTYPES[dtype])
                for name, (dtype, shape) in signature.outputs.items()
            }
        return self._batcher.submit(key, inputs, is_active).result(timeout=timeout_s)

    def close(self) -> None:
        """Finish queued batches (in the background) and stop taking new ones."""
        self._batcher.close(wait=False)

    def _warm_up(self) -> None:
        """One call per fully-shaped signature, so the first real request is not slow."""
        for key, signature in self.signatures.items():
            shapes = {n: (d, (1, *s[1:])) for n, (d, s) in signature.inputs.items()}
            if signature.batchable and all(d in DTYPES and min(s) > 0 for d, s in shapes.values()):
                self.run(key, {n: np.zeros(s, DTYPES[d]) for n, (d, s) in shapes.items()})


class State(enum.IntEnum):
    """Version states, numbered as TF Serving's ModelVersionStatus.State."""

    START = 10
    LOADING = 20
    AVAILABLE = 30
    UNLOADING = 40
    END = 50


@dataclass(frozen=True)
class VersionStatus:
    state: State
    error: str = ""


class ModelWatcher:
    """Polls `<base>/<name>/` and keeps the newest loadable version in service."""

    def __init__(
        self,
        base: Path,
        name: str,
        batching: BatchConfig,
        runtime: RuntimeConfig = RuntimeConfig(),  # noqa: B008 - frozen dataclass
    ) -> None:
        self.name = name
        self._dir = base / name
        self._batching = batching
        self._runtime = runtime
        self._lock = threading.Lock()
        self._current: Servable | None = None
        self._status: dict[int, VersionStatus] = {}
        self._failed: dict[int, float] = {}
        """Version → newest mtime in its folder when it failed: retried once a file changes
        (a version copied in file by file may be loaded before the copy is complete)."""

    @property
    def current(self) -> Servable | None:
        with self._lock:
            return self._current

    def status(self) -> dict[int, VersionStatus]:
        with self._lock:
            return dict(self._status)

    def poll(self) -> None:
        """Load the newest version if it is not the one being served."""
        found = versions(self._dir)
        if not found:
            return
        newest = found[-1]
        current = self.current
        if current is not None and current.version == newest:
            return
        folder = self._dir / str(newest)
        mtime = max(p.stat().st_mtime for p in [folder, *folder.rglob("*")])
        if self._failed.get(newest) == mtime:
            return
        self._set_status(newest, VersionStatus(State.LOADING))
        started = time.monotonic()
        try:
            servable = Servable(
                self.name, newest, self._dir / str(newest), self._batching, self._runtime
            )
        except Exception as error:  # a bad version must not stop the server
            self._failed[newest] = mtime
            LOAD_FAILURES.inc()
            log.error("version_load_failed", model=self.name, version=newest, error=str(error))
            self._set_status(newest, VersionStatus(State.END, f"load failed: {error}"))
            return
        with self._lock:
            old, self._current = self._current, servable
            self._status[newest] = VersionStatus(State.AVAILABLE)
            if old is not None:
                self._status[old.version] = VersionStatus(State.END)
        LOADED_VERSION.set(newest)
        log.info(
            "version_loaded",
            model=self.name,
            version=newest,
            replaced=old.version if old else None,
            runtime=servable.runtime.name,
            load_s=round(time.monotonic() - started, 2),
        )
        if old is not None:
            old.close()

    def close(self) -> None:
        with self._lock:
            old, self._current = self._current, None
        if old is not None:
            old.close()
        LOADED_VERSION.set(0)

    def _set_status(self, version: int, status: VersionStatus) -> None:
        with self._lock:
            self._status[version] = status
