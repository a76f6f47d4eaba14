"""Server-side batching: concurrent small requests become one model call.

Detector workers send one frame's faces per request, often a single crop. A model call has a
large fixed cost, so the server holds the first queued request for at most `timeout_s`
while others with the same signature and crop shape arrive, then runs them together and
hands every caller its own rows. The queue is bounded: when it is full, submit fails
immediately (the gRPC layer answers UNAVAILABLE and clients back off) instead of letting
latency grow without limit.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from prometheus_client import Gauge, Histogram

Arrays = dict[str, npt.NDArray[np.generic]]
RunFn = Callable[[str, Arrays], Arrays]

BATCH_ROWS = Histogram(
    "maskwatch_model_server_batch_rows",
    "Rows (crops) per model call made by the batcher.",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
QUEUE_DEPTH = Gauge("maskwatch_model_server_queue_depth", "Requests waiting for a batch.")


class QueueFullError(RuntimeError):
    """The batch queue holds its maximum number of requests."""


class BatcherClosedError(RuntimeError):
    """The batcher belongs to a model version that is being unloaded."""


@dataclass(eq=False)
class _Task:
    signature: str
    inputs: Arrays
    rows: int
    is_active: Callable[[], bool]
    future: Future[Arrays] = field(default_factory=Future)
    enqueued: float = field(default_factory=time.monotonic)
    taken: bool = False

    @property
    def key(self) -> tuple[object, ...]:
        """Tasks batch together only with the same signature and per-row shapes/dtypes."""
        return (
            self.signature,
            tuple((k, v.dtype.str, v.shape[1:]) for k, v in sorted(self.inputs.items())),
        )


class Batcher:
    """Bounded queue plus `threads` workers that merge queued tasks into model calls."""

    def __init__(
        self,
        run: RunFn,
        max_batch_size: int,
        timeout_s: float,
        max_queued: int,
        threads: int = 1,
    ) -> None:
        self._run = run
        self._max_rows = max_batch_size
        self._timeout_s = timeout_s
        self._max_queued = max_queued
        self._queue: deque[_Task] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._workers = [
            threading.Thread(target=self._work, name=f"batcher-{i}", daemon=True)
            for i in range(threads)
        ]
        for worker in self._workers:
            worker.start()

    def submit(
        self, signature: str, inputs: Arrays, is_active: Callable[[], bool] = lambda: True
    ) -> Future[Arrays]:
        """Queue one request whose inputs share a leading batch dimension."""
        rows = next(iter(inputs.values())).shape[0] if inputs else 0
        task = _Task(signature, inputs, rows, is_active)
        with self._cond:
            if self._closed:
                raise BatcherClosedError("model version is being unloaded")
            if len(self._queue) >= self._max_queued:
                raise QueueFullError(f"batch queue is full ({self._max_queued} requests)")
            self._queue.append(task)
            QUEUE_DEPTH.inc()
            self._cond.notify_all()
        return task.future

    def close(self, wait: bool = True) -> None:
        """Refuse new tasks, finish the queued ones, stop the workers."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if wait:
            for worker in self._workers:
                worker.join()

    def _work(self) -> None:
        while (batch := self._next_batch()) is not None:
            self._execute(batch)

    def _next_batch(self) -> list[_Task] | None:
        with self._cond:
            while True:
                while not self._queue:
                    if self._closed:
                        return None
                    self._cond.wait()
                first = self._queue[0]
                deadline = first.enqueued + self._timeout_s
                while not first.taken:
                    batch = self._matching(first)
                    rows = sum(t.rows for t in batch)
                    if rows >= self._max_rows or self._closed or time.monotonic() >= deadline:
                        for task in batch:
                            task.taken = True
                            self._queue.remove(task)
                            QUEUE_DEPTH.dec()
                        if batch:
                            return batch
                        break
                    self._cond.wait(deadline - time.monotonic())
                # `first` was taken by another worker or dropped: look at the queue again.

    def _matching(self, first: _Task) -> list[_Task]:
        """Queued tasks batchable with `first`, in arrival order, within the row limit.

        Tasks whose caller has gone (deadline passed, cancelled) are dropped here, so a
        burst of abandoned requests never costs model time.
        """
        batch: list[_Task] = []
        rows = 0
        for task in list(self._queue):
            if not task.is_active():
                task.taken = True
                self._queue.remove(task)
                QUEUE_DEPTH.dec()
                task.future.cancel()
                continue
            if task.key != first.key or (batch and rows + task.rows > self._max_rows):
                continue
            batch.append(task)
            rows += task.rows
        return batch

    def _execute(self, batch: list[_Task]) -> None:
        rows = [t.rows for t in batch]
        BATCH_ROWS.observe(sum(rows))
        try:
            if len(batch) == 1:
                results = [self._run(batch[0].signature, batch[0].inputs)]
            else:
                merged = {
                    name: np.concatenate([t.inputs[name] for t in batch])
                    for name in batch[0].inputs
                }
                outputs = self._run(batch[0].signature, merged)
                bounds = np.cumsum(rows)[:-1]
                split = {name: np.split(value, bounds) for name, value in outputs.items()}
                results = [
                    {name: parts[i] for name, parts in split.items()} for i in range(len(batch))
                ]
        except Exception as error:  # every caller must hear about the failure
            for task in batch:
                task.future.set_exception(error)
            return
        for task, result in zip(batch, results, strict=True):
            task.future.set_result(result)
