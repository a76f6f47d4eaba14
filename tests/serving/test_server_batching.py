"""The batcher alone: merging, row order, limits, failures (no model, no gRPC)."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from serving.batching import Arrays, Batcher, BatcherClosedError, QueueFullError


class Recorder:
    """A model stand-in: doubles its input and records every batch it was given."""

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.batches: list[int] = []
        self.gate = gate
        self.entered = threading.Event()

    def __call__(self, signature: str, inputs: Arrays) -> Arrays:
        self.entered.set()
        if self.gate is not None:
            self.gate.wait(10)
        self.batches.append(len(inputs["x"]))
        return {"y": inputs["x"] * 2}


def rows(n: int, start: int) -> Arrays:
    return {"x": np.arange(start, start + n, dtype=np.int64).reshape(n, 1)}


def test_queued_requests_merge_and_each_caller_gets_its_rows() -> None:
    gate = threading.Event()
    model = Recorder(gate)
    batcher = Batcher(model, max_batch_size=8, timeout_s=0.5, max_queued=16)
    try:
        blocker = batcher.submit("s", rows(1, 0))  # occupies the worker until the gate opens
        assert model.entered.wait(10)
        futures = [batcher.submit("s", rows(n, 100 * n)) for n in (1, 2, 3)]
        gate.set()
        assert blocker.result(10)["y"].tolist() == [[0]]
        for n, future in zip((1, 2, 3), futures, strict=True):
            assert future.result(10)["y"].ravel().tolist() == [2 * (100 * n + i) for i in range(n)]
    finally:
        batcher.close()
    assert model.batches == [1, 6]


def test_a_full_batch_leaves_at_once_and_the_rest_waits_for_the_next() -> None:
    gate = threading.Event()
    model = Recorder(gate)
    batcher = Batcher(model, max_batch_size=4, timeout_s=30.0, max_queued=16)
    try:
        futures = [batcher.submit("s", rows(2, i * 10)) for i in range(4)]
        gate.set()
        for future in futures[:2]:
            future.result(10)
    finally:
        batcher.close()  # closing flushes the partial batch without waiting for the timeout
    assert model.batches == [4, 4]


def test_different_signatures_are_not_merged() -> None:
    gate = threading.Event()
    model = Recorder(gate)
    batcher = Batcher(model, max_batch_size=8, timeout_s=0.2, max_queued=16)
    try:
        first = batcher.submit("a", rows(1, 0))
        second = batcher.submit("b", rows(1, 1))
        gate.set()
        first.result(10)
        second.result(10)
    finally:
        batcher.close()
    assert model.batches == [1, 1]


def test_queue_limit_and_close_refuse_new_work() -> None:
    gate = threading.Event()
    model = Recorder(gate)
    batcher = Batcher(model, max_batch_size=1, timeout_s=0.0, max_queued=2)
    futures = [batcher.submit("s", rows(1, 0))]
    assert model.entered.wait(10)  # one is running, two may queue
    futures += [batcher.submit("s", rows(1, i)) for i in (1, 2)]
    with pytest.raises(QueueFullError):
        for i in range(3):
            futures.append(batcher.submit("s", rows(1, i)))
    gate.set()
    batcher.close()
    assert all(f.done() for f in futures)
    with pytest.raises(BatcherClosedError):
        batcher.submit("s", rows(1, 0))


def test_a_model_failure_reaches_every_caller_of_the_batch() -> None:
    def broken(signature: str, inputs: Arrays) -> Arrays:
        raise RuntimeError("boom")

    batcher = Batcher(broken, max_batch_size=8, timeout_s=0.05, max_queued=8)
    try:
        futures = [batcher.submit("s", rows(1, i)) for i in range(3)]
        for future in futures:
            with pytest.raises(RuntimeError, match="boom"):
                future.result(10)
    finally:
        batcher.close()


def test_abandoned_requests_are_dropped_before_the_model_runs() -> None:
    gate = threading.Event()
    model = Recorder(gate)
    batcher = Batcher(model, max_batch_size=8, timeout_s=0.05, max_queued=8)
    try:
        busy = batcher.submit("s", rows(1, 0))
        assert model.entered.wait(10)
        gone = batcher.submit("s", rows(1, 1), is_active=lambda: False)
        kept = batcher.submit("s", rows(2, 2))
        gate.set()
        busy.result(10)
        assert kept.result(10)["y"].ravel().tolist() == [4, 6]
        assert gone.cancelled()
    finally:
        batcher.close()
    assert model.batches == [1, 2]
