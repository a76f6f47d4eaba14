"""Noticing that the broker is gone, and waiting for it instead of dying.

kafka-python's `poll()` does not raise when every broker is unreachable: its IO thread keeps
reconnecting and the poll just returns nothing, so a loop that only polls looks idle and
ready while it can neither commit nor publish. `BrokerProbe` asks the broker a cheap
question (the end offset of one partition, bounded by a short timeout) when the loop has
heard nothing from it for a while, and holds the service's readiness down while the answer
does not come. A loop that just received records has its answer and sends nothing.

A flush or a commit during the outage raises a retriable `KafkaError` (a timeout, a lost
connection, no coordinator). `until_kafka_answers` runs such a step again with back-off,
not ready meanwhile, until the broker takes it or the service is asked to stop: the batch
it belongs to stays uncommitted, so waiting loses nothing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from runtime.backoff import Backoff, BackoffPolicy
from runtime.logs import get_logger
from runtime.service import Health

log = get_logger("broker")
T = TypeVar("T")

BLOCK = "kafka"
"""The name under which broker trouble holds readiness down (`Health.block`)."""
PROBE_EVERY_S = 2.0
"""Quiet time after which the loop asks the broker whether it is there."""
PROBE_TIMEOUT_MS = 1_000
"""How long one probe may block the loop (the broker answers a local ListOffsets in ms)."""
OUTAGE_BACKOFF = BackoffPolicy(initial_s=0.5, max_s=5.0)
"""Waiting for the broker: unbounded (the step is held, nothing is lost by waiting)."""


class BrokerProbe:
    """Readiness from the broker's answers (see the module doc)."""

    def __init__(
        self,
        consumer: KafkaConsumer,
        topic: str,
        health: Health,
        every_s: float = PROBE_EVERY_S,
        timeout_ms: int = PROBE_TIMEOUT_MS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.consumer, self.topic, self.health = consumer, topic, health
        self.every_s, self.timeout_ms, self.clock = every_s, timeout_ms, clock
        self._heard_at = clock()

    def answered(self) -> None:
        """The broker just answered (records arrived, a commit went through)."""
        self._heard_at = self.clock()
        self.health.block(BLOCK, None)

    def lost(self, error: KafkaError, pause_s: float = 0.0) -> None:
        """A call raised because the broker is gone (kafka-python's `poll` does, at times,
        during a broker restart): not ready until it answers again; `pause_s` keeps a loop
        that retries at once from spinning."""
        self.health.block(BLOCK, "broker unreachable")
        log.warning("broker_unreachable", error=type(error).__name__)
        self._heard_at = self.clock()
        time.sleep(pause_s)

    def check(self) -> bool:
        """Probe if the broker has been quiet for `every_s`; whether it answers."""
        if self.clock() - self._heard_at < self.every_s:
            return True
        partition = self._partition()
        try:
            self.consumer.end_offsets([partition], timeout_ms=self.timeout_ms)
        except KafkaError as error:
            self.lost(error)  # the next probe after another quiet period
            return False
        self.answered()
        return True

    def _partition(self) -> TopicPartition:
        """One partition of the loop's topic: an assigned one, else partition 0 (every topic
        has one; asking the client which partitions exist may block on metadata, unbounded)."""
        assigned = sorted(
            (tp for tp in self.consumer.assignment() if tp.topic == self.topic),
            key=lambda tp: tp.partition,
        )
        return assigned[0] if assigned else TopicPartition(self.topic, 0)


def until_kafka_answers(
    work: Callable[[], T], health: Health, stopping: threading.Event, what: str
) -> T | None:
    """`work()` until it does not raise a retriable KafkaError; None if stopped first.

    Not ready while it waits. Non-retriable errors (a failed commit after a rebalance, an
    authorisation failure) are the caller's to handle and pass through.
    """
    backoff = Backoff(OUTAGE_BACKOFF)
    while True:
        try:
            value = work()
        except KafkaError as error:
            if not error.retriable:
                raise
            delay = backoff.next_delay() or OUTAGE_BACKOFF.max_s
            health.block(BLOCK, "broker unreachable")
            log.warning("kafka_unavailable", step=what, error=repr(error)[:300], retry_in_s=delay)
            if stopping.wait(delay):
                return None
            health.beat()
            continue
        health.block(BLOCK, None)
        return value
