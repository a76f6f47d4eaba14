"""A revoke drops batched frames; a partition that comes back must be re-read from them.

kafka-python keeps a partition's fetch position when the same member owns it before and after
a rebalance, so frames discarded from the batcher at the revoke would otherwise be skipped
(the fault soak lost two frames this way before the rewind existed).
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

import numpy as np
from kafka import TopicPartition

from runtime.kafka import KafkaSettings
from runtime.service import Health
from workers.detector.core import PendingFrame
from workers.detector.settings import DetectorSettings
from workers.detector.worker import Worker

from .conftest import frame_message, jpeg, make_core


class RecordingConsumer:
    """Only what a revoke / assign touches: commits and seeks, recorded."""

    def __init__(self) -> None:
        self.seeks: list[tuple[TopicPartition, int]] = []
        self.commits: list[Any] = []

    def seek(self, partition: TopicPartition, offset: int) -> None:
        self.seeks.append((partition, offset))

    def commit(self, offsets: Any, timeout_ms: int | None = None) -> None:
        self.commits.append(offsets)


def worker_with_batched_frames(offsets: list[int]) -> tuple[Worker, RecordingConsumer]:
    core = make_core([(4.0, 4.0, 20.0, 20.0)], max_frame_bytes=100_000)
    consumer = RecordingConsumer()
    worker = Worker(
        DetectorSettings(),
        KafkaSettings(),
        consumer,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        core,
        None,  # type: ignore[arg-type]
        Health(),
        threading.Event(),
    )
    now = datetime.now(UTC)
    for offset in offsets:
        message = frame_message(
            jpeg(np.zeros((48, 64, 3), np.uint8)), seq=offset, captured_at=now, offset=offset
        )
        pending = core.prepare(message, now)
        assert isinstance(pending, PendingFrame)
        worker.offsets.start(TopicPartition("frames", 0), offset)
        worker.batcher.add(pending, 1, 0.0)
    return worker, consumer


def test_partition_assigned_back_is_rewound_to_the_first_discarded_frame() -> None:
    worker, consumer = worker_with_batched_frames([7, 8])
    tp = TopicPartition("frames", 0)
    worker.on_revoked([tp])
    assert len(worker.batcher) == 0
    worker.on_assigned([tp, TopicPartition("frames", 1)])
    assert consumer.seeks == [(tp, 7)]
    assert consumer.commits == []  # nothing was answered, so nothing past 7 is committed


def test_partition_owned_elsewhere_is_not_sought_and_the_rewind_is_forgotten() -> None:
    worker, consumer = worker_with_batched_frames([3])
    worker.on_revoked([TopicPartition("frames", 0)])
    worker.on_assigned([TopicPartition("frames", 1)])
    worker.on_assigned([TopicPartition("frames", 0)])  # a later, unrelated rebalance
    assert consumer.seeks == []


class IoThreadConsumer(RecordingConsumer):
    """kafka-python 3 calls the rebalance listener on its IO thread, where a blocking
    commit raises instead of committing."""

    def commit(self, offsets: Any, timeout_ms: int | None = None) -> None:
        raise RuntimeError("Cannot block on net.run() from the IO thread itself.")


def test_a_commit_refused_in_the_listener_does_not_end_the_worker() -> None:
    worker, _ = worker_with_batched_frames([7, 8])
    consumer = IoThreadConsumer()
    worker.consumer = consumer
    tp, answered = TopicPartition("frames", 0), TopicPartition("frames", 1)
    worker.offsets.start(answered, 3)
    worker.offsets.done(answered, 3)  # an answered frame: the revoke tries to commit it
    assert worker.offsets.committable() == {answered: 4}
    worker.on_revoked([tp, answered])  # must not raise (it ended the worker at rebalances)
    assert len(worker.batcher) == 0
    worker.on_assigned([tp])
    assert consumer.seeks == [(tp, 7)]
