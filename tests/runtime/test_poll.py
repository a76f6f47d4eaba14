"""poll_records: a record kafka-python cannot decode is located, skipped and reported."""

from __future__ import annotations

import time
import uuid

import pytest

from runtime.kafka import KafkaSettings, make_consumer, make_producer
from runtime.poll import CorruptRecord, poll_records


class RawHeaderKey(str):
    """A header key whose wire bytes are not UTF-8 (kafka-python encodes keys with .encode)."""

    __slots__ = ()

    def encode(self, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        return b"mw-\xff\xfe"


@pytest.mark.integration
def test_corrupt_header_keys_are_skipped_and_named(kafka_settings: KafkaSettings) -> None:
    """Two partitions each hold corrupt records (the client raises for one of them at a
    time); both are found, skipped and named, and every good record is still read."""
    producer = make_producer(kafka_settings, "test-poll", linger_ms=0)
    for partition in (0, 1):
        for i in range(6):
            headers = [(RawHeaderKey("x"), b"1")] if i in (2, 3) else [("mw-ok", b"1")]
            producer.send(
                kafka_settings.frames_topic,
                value=b"v%d" % i,
                key=b"cam",
                headers=headers,
                partition=partition,
            )
            producer.flush()
    producer.close(timeout=10)
    consumer = make_consumer(
        kafka_settings, f"g-{uuid.uuid4().hex[:8]}", "test-poll", kafka_settings.frames_topic
    )
    values: list[tuple[int, bytes]] = []
    corrupt: list[CorruptRecord] = []
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline and len(values) + len(corrupt) < 12:
            polled = poll_records(consumer, 500, 8)
            values += [(r.partition, r.value) for batch in polled.records.values() for r in batch]
            corrupt += polled.corrupt
    finally:
        consumer.close()
    for partition in (0, 1):
        assert [v for p, v in values if p == partition] == [b"v0", b"v1", b"v4", b"v5"]
        assert sorted(c.offset for c in corrupt if c.partition == partition) == [2, 3]
    assert {c.topic for c in corrupt} == {kafka_settings.frames_topic}
    assert all("UnicodeDecodeError" in c.error for c in corrupt)
