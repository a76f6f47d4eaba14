"""Publishing the answer of every frame taken, then committing it: the worker's delivery.

At-least-once: a frame's offset is committed only after its result (or dead letter) is
acknowledged by Kafka, and only up to the first frame that is not (`OffsetTracker`), so a
frame answered early never lets an older unanswered one be skipped after a crash. A write
Kafka refused, or did not take within the producer's delivery timeout, raises: the worker
crashes with nothing more committed. While the broker is away, a flush or a commit is
retried (`runtime.broker.until_kafka_answers`, not ready meanwhile) until it returns.
"""

from __future__ import annotations

import threading
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import CommitFailedError, RebalanceInProgressError
from kafka.structs import OffsetAndMetadata

from runtime.broker import BrokerProbe, until_kafka_answers
from runtime.dead_letters import DeadLetterSink
from runtime.kafka import KafkaSettings, topic_specs
from runtime.logs import get_logger
from runtime.service import Health
from schemas.common import encode
from schemas.dead_letter import DeadLetter
from schemas.result import FrameResult
from workers.detector import metrics
from workers.detector.batching import OffsetTracker
from workers.detector.core import FrameMessage

log = get_logger("detector")
KAFKA_STEP_S = 10.0
"""Bound of one flush or commit while the broker is away, so the loop keeps beating."""


class Outbox:
    """Results and dead letters sent, acknowledged, then their offsets committed."""

    def __init__(
        self,
        kafka: KafkaSettings,
        consumer: KafkaConsumer,
        producer: KafkaProducer,
        health: Health,
        stopping: threading.Event,
        broker: BrokerProbe,
    ) -> None:
        self.consumer, self.producer = consumer, producer
        self.health, self.stopping, self.broker = health, stopping, broker
        self.results_topic = kafka.results_topic
        self.offsets: OffsetTracker[TopicPartition] = OffsetTracker()
        dead_letter_bytes = {s.name: s.max_message_bytes for s in topic_specs(kafka)}
        self.dead_letters = DeadLetterSink(
            producer, kafka.dead_letter_topic, dead_letter_bytes[kafka.dead_letter_topic]
        )
        self._sent: list[tuple[Any, TopicPartition, int, str]] = []

    def publish(self, message: FrameMessage, outcome: FrameResult | DeadLetter) -> None:
        partition = TopicPartition(message.topic, message.partition)
        if isinstance(outcome, DeadLetter):
            self.send_letter(partition, message.offset, outcome)
            return
        value = encode(outcome)
        future = self.producer.send(self.results_topic, key=outcome.camera_id.encode(), value=value)
        self._sent.append((future, partition, message.offset, outcome.status))
        if outcome.status == "processed":
            metrics.FACES_PER_FRAME.observe(outcome.counts.faces)
            lag_ms = (outcome.processed_at - outcome.captured_at).total_seconds() * 1000
            metrics.END_TO_END_MS.observe(max(lag_ms, 0.0))

    def send_letter(self, partition: TopicPartition, offset: int, letter: DeadLetter) -> None:
        metrics.DEAD_LETTERS.labels(letter.reason.value).inc()
        future = self.dead_letters.send(letter)
        self._sent.append((future, partition, offset, "dead_lettered"))

    def flush_and_commit(self) -> None:
        """Wait for every publish to be acknowledged, then commit what is contiguous."""
        if self._sent:
            flushed = until_kafka_answers(self._flush, self.health, self.stopping, "flush")
            if flushed is None:
                return  # stopping with the broker away: nothing unacknowledged is committed
            self.dead_letters.confirm()  # raises if one was lost: crash, nothing committed
            for future, partition, offset, label in self._sent:
                future.get(timeout=0)  # raises if the write failed: crash, nothing committed
                self.offsets.done(partition, offset)
                metrics.FRAMES.labels(label).inc()
            self._sent.clear()
        points = self.offsets.committable()
        metrics.IN_FLIGHT.set(self.offsets.in_flight())
        if not points:
            return
        offsets = {p: OffsetAndMetadata(o, "", -1) for p, o in points.items()}
        try:
            done = until_kafka_answers(
                lambda: self._commit(offsets), self.health, self.stopping, "commit"
            )
        except (CommitFailedError, RebalanceInProgressError) as error:
            log.warning("commit_failed", error=str(error))  # committed again by the next turn
            return
        if done:
            self.offsets.committed(points)
            self.broker.answered()

    def _flush(self) -> bool:
        self.producer.flush(timeout=KAFKA_STEP_S)
        return True

    def _commit(self, offsets: dict[TopicPartition, OffsetAndMetadata]) -> bool:
        self.consumer.commit(offsets, timeout_ms=int(KAFKA_STEP_S * 1000))
        return True
