"""runtime.broker's rules with a stand-in consumer: when the broker is asked, what readiness
follows, which errors are waited out. The real broker going away is tested in
tests/workers/aggregator/test_broker_restart.py and tests/workers/detector/test_broker_restart.py.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from kafka import TopicPartition
from kafka.errors import CommitFailedError, KafkaTimeoutError

from runtime import broker
from runtime.backoff import BackoffPolicy
from runtime.broker import BrokerProbe, until_kafka_answers
from runtime.service import Health


class Consumer:
    """Answers `end_offsets` or raises, as told; records what it was asked."""

    def __init__(self) -> None:
        self.up = True
        self.asked: list[list[TopicPartition]] = []
        self.assigned: set[TopicPartition] = set()

    def end_offsets(self, partitions: list[TopicPartition], timeout_ms: int) -> dict[Any, int]:
        self.asked.append(partitions)
        if not self.up:
            raise KafkaTimeoutError("no broker")
        return dict.fromkeys(partitions, 0)

    def assignment(self) -> set[TopicPartition]:
        return self.assigned


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def probe_of(consumer: Consumer, health: Health, clock: Clock) -> BrokerProbe:
    return BrokerProbe(consumer, "t", health, every_s=2.0, timeout_ms=100, clock=clock)


def test_the_broker_is_asked_only_after_a_quiet_period_and_readiness_follows_its_answer() -> None:
    consumer, health, clock = Consumer(), Health(), Clock()
    health.set_ready(True)
    probe = probe_of(consumer, health, clock)
    clock.now = 1.9
    assert probe.check() and consumer.asked == []  # heard from recently: nothing sent
    consumer.up = False
    clock.now = 2.0
    assert not probe.check()
    assert health.ready == (False, "kafka: broker unreachable")
    assert consumer.asked == [[TopicPartition("t", 0)]]  # no assignment: partition 0
    clock.now = 3.0
    assert probe.check() and len(consumer.asked) == 1  # next probe after another quiet period
    consumer.up = True
    consumer.assigned = {TopicPartition("t", 2), TopicPartition("other", 0)}
    clock.now = 4.0
    assert probe.check()
    assert health.ready == (True, "")
    assert consumer.asked[-1] == [TopicPartition("t", 2)]  # an assigned one of its topic


def test_records_arriving_count_as_an_answer() -> None:
    consumer, health, clock = Consumer(), Health(), Clock()
    health.set_ready(True)
    probe = probe_of(consumer, health, clock)
    consumer.up = False
    clock.now = 5.0
    assert not probe.check()
    probe.answered()
    assert health.ready == (True, "")
    clock.now = 6.9
    assert probe.check() and len(consumer.asked) == 1


def test_retriable_errors_are_waited_out_not_ready_meanwhile(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(broker, "OUTAGE_BACKOFF", BackoffPolicy(initial_s=0.01, max_s=0.01))
    health, stopping = Health(), threading.Event()
    health.set_ready(True)
    seen: list[tuple[bool, str]] = []
    failures = [KafkaTimeoutError("flush"), KafkaTimeoutError("flush")]

    def work() -> str:
        if failures:
            raise failures.pop()
        seen.append(health.ready)
        return "done"

    assert until_kafka_answers(work, health, stopping, "step") == "done"
    assert seen == [(False, "kafka: broker unreachable")]  # lifted only after it returned
    assert health.ready == (True, "")


def test_a_stop_ends_the_wait_and_other_errors_pass_through() -> None:
    health, stopping = Health(), threading.Event()
    stopping.set()

    def timing_out() -> None:
        raise KafkaTimeoutError("flush")

    def failing() -> None:
        raise CommitFailedError("rebalanced")

    assert until_kafka_answers(timing_out, health, stopping, "step") is None
    with pytest.raises(CommitFailedError):
        until_kafka_answers(failing, health, stopping, "step")


def test_a_poll_that_raised_holds_readiness_down_until_the_broker_answers() -> None:
    consumer, health, clock = Consumer(), Health(), Clock()
    health.set_ready(True)
    probe = probe_of(consumer, health, clock)
    probe.lost(KafkaTimeoutError("connection refused"))
    assert health.ready == (False, "kafka: broker unreachable")
    probe.answered()
    assert health.ready == (True, "")
