"""Dead letters: bounded whatever the record, always fit their topic, confirmed before commit."""

from __future__ import annotations

from typing import Any

import pytest
from kafka import KafkaConsumer

from runtime.dead_letters import DeadLetterLostError, DeadLetterSink
from runtime.kafka import KafkaSettings, make_producer
from schemas.common import DeadLetterReason, decode
from schemas.dead_letter import SUPPORTED_DEAD_LETTER_VERSIONS, DeadLetter, build_dead_letter

MiB = 1024 * 1024


def hostile_letter() -> DeadLetter:
    """The 700 kB camera-id header that once made a dead letter exceed its topic."""
    return build_dead_letter(
        source_topic="maskwatch.frames",
        partition=3,
        offset=17,
        stage="detector",
        reason=DeadLetterReason.MALFORMED_HEADER,
        message="x" * 5_000_000,
        payload=b"\xff" * 10_000_000,
        camera_id="c\x00" * 350_000,
    )


def test_builder_bounds_every_unbounded_field() -> None:
    letter = hostile_letter()
    assert letter.camera_id is not None and len(letter.camera_id) == 64
    assert letter.camera_id.isprintable()
    assert len(letter.message) == 2000
    assert letter.payload_size == 10_000_000
    assert len(DeadLetterSink(_Refusing(), "dl", MiB).value_of(letter)) < 16_000


def test_sink_shortens_the_message_to_fit_a_small_topic() -> None:
    sink = DeadLetterSink(_Refusing(), "dl", 2048)
    value = sink.value_of(hostile_letter())
    assert len(value) <= 1024
    read = decode(DeadLetter, value, SUPPORTED_DEAD_LETTER_VERSIONS)
    assert read.reason == DeadLetterReason.MALFORMED_HEADER and read.offset == 17


class _Failed:
    def get(self, timeout: float | None = None) -> None:
        raise RuntimeError("broker said no")


class _Refusing:
    """A producer whose every send fails (a unit-test stand-in for a lost write)."""

    def send(self, topic: str, value: bytes | None = None, key: bytes | None = None) -> Any:
        return _Failed()

    def flush(self, timeout: float | None = None) -> None:
        return None


def test_confirm_raises_when_a_send_was_not_acknowledged() -> None:
    sink = DeadLetterSink(_Refusing(), "dl", MiB)
    sink.send(hostile_letter())
    with pytest.raises(DeadLetterLostError, match=r"maskwatch\.frames/3@17"):
        sink.confirm()
    assert sink.confirm() == 0  # the failure was reported once; the caller decides what next


@pytest.mark.integration
def test_hostile_letter_reaches_the_real_topic(kafka_settings: KafkaSettings) -> None:
    producer = make_producer(kafka_settings, "test-dead-letters")
    sink = DeadLetterSink(producer, kafka_settings.dead_letter_topic, MiB)
    try:
        sink.send(hostile_letter())
        assert sink.confirm(timeout_s=30) == 1
    finally:
        producer.close(timeout=10)
    consumer = KafkaConsumer(
        kafka_settings.dead_letter_topic,
        bootstrap_servers=kafka_settings.bootstrap_servers.split(","),
        auto_offset_reset="earliest",
        consumer_timeout_ms=10_000,
    )
    try:
        values = [record.value for record in consumer]
    finally:
        consumer.close()
    assert len(values) == 1
    letter = decode(DeadLetter, values[0], SUPPORTED_DEAD_LETTER_VERSIONS)
    assert letter.partition == 3 and letter.camera_id == ("c?" * 32)
