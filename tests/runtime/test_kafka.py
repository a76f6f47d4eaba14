"""Kafka against the real local broker: version, topics, frames through a consumer group."""

from __future__ import annotations

import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import cv2
import numpy as np
import pytest
from kafka import KafkaConsumer, TopicPartition
from kafka.errors import MessageSizeTooLargeError

from runtime.kafka import (
    KafkaSettings,
    broker_info,
    create_topics,
    delete_topics,
    existing_topics,
    frame_message_bytes,
    make_admin,
    make_consumer,
    make_producer,
    topic_specs,
)
from schemas.frame import FrameMeta, frame_headers, parse_frame_headers

pytestmark = pytest.mark.integration


def jpeg(seed: int, width: int = 64, height: int = 48) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    ok, encoded = cv2.imencode(".jpg", pixels)
    assert ok
    return bytes(encoded.tobytes())


def poll_until(consumer: KafkaConsumer, count: int, timeout_s: float = 30.0) -> list[object]:
    records: list[object] = []
    deadline = time.monotonic() + timeout_s
    while len(records) < count and time.monotonic() < deadline:
        for batch in consumer.poll(timeout_ms=500).values():
            records.extend(batch)
    return records


def test_broker_is_apache_kafka_4() -> None:
    info = broker_info(KafkaSettings())
    assert info.broker_ids, "no unfenced broker"
    assert info.version[0] == 4, f"broker version {info.version}, expected 4.x"


def test_topic_creation_is_idempotent(unique_name: str) -> None:
    prefix = f"test.{unique_name}"
    settings = KafkaSettings(
        frames_topic=f"{prefix}.frames",
        results_topic=f"{prefix}.results",
        dead_letter_topic=f"{prefix}.dlq",
        alerts_topic=f"{prefix}.alerts",
        frames_partitions=6,
        results_partitions=4,
    )
    specs = topic_specs(settings)
    names = [s.name for s in specs]
    try:
        assert create_topics(settings) == dict.fromkeys(names, "created")
        assert existing_topics(settings, names) == {s.name: s for s in specs}
        assert create_topics(settings) == dict.fromkeys(names, "exists")
        assert existing_topics(settings, names) == {s.name: s for s in specs}
        frames = existing_topics(settings, [settings.frames_topic])[settings.frames_topic]
        assert frames.partitions == 6
        assert frames.max_message_bytes == frame_message_bytes(settings) > settings.max_frame_bytes
        assert frames.retention_ms == 3_600_000
    finally:
        delete_topics(settings, names)


def test_a_topic_that_differs_is_reported_not_altered(kafka_settings: KafkaSettings) -> None:
    wider = kafka_settings.model_copy(update={"frames_partitions": 5})
    outcome = create_topics(wider)
    assert outcome[kafka_settings.frames_topic].startswith("differs")
    assert outcome[kafka_settings.results_topic] == "exists"
    found = existing_topics(kafka_settings, [kafka_settings.frames_topic])
    assert found[kafka_settings.frames_topic].partitions == 3


def test_frames_round_trip_through_a_consumer_group(
    kafka_settings: KafkaSettings, unique_name: str
) -> None:
    topic, group = kafka_settings.frames_topic, f"test-{unique_name}"
    start = datetime.now(UTC)
    sent: dict[tuple[str, int], tuple[FrameMeta, bytes]] = {}
    producer = make_producer(kafka_settings, "test-producer")
    try:
        for seq in range(10):
            for camera in ("cam-a", "cam-b"):
                meta = FrameMeta(
                    camera_id=camera,
                    seq=seq,
                    width=64,
                    height=48,
                    captured_at=start + timedelta(milliseconds=40 * seq),
                )
                value = jpeg(seq * 2 + (camera == "cam-b"))
                producer.send(
                    topic, key=camera.encode(), value=value, headers=frame_headers(meta)
                ).get(timeout=30)
                sent[(camera, seq)] = (meta, value)
    finally:
        producer.close()

    consumer = make_consumer(kafka_settings, group, "test-consumer", topic)
    try:
        records = poll_until(consumer, len(sent))
        assert len(records) == len(sent)
        seqs: dict[str, list[int]] = defaultdict(list)
        partitions: dict[str, set[int]] = defaultdict(set)
        for record in records:
            meta = parse_frame_headers(record.headers)  # type: ignore[attr-defined]
            assert record.key == meta.camera_id.encode()  # type: ignore[attr-defined]
            assert (meta, record.value) == sent[(meta.camera_id, meta.seq)]  # type: ignore[attr-defined]
            seqs[meta.camera_id].append(meta.seq)
            partitions[meta.camera_id].add(record.partition)  # type: ignore[attr-defined]
        assert seqs == {"cam-a": list(range(10)), "cam-b": list(range(10))}, "order per camera"
        assert all(len(p) == 1 for p in partitions.values()), "one partition per camera"
        consumer.commit()
    finally:
        consumer.close()

    admin = make_admin(kafka_settings)
    try:
        committed = admin.list_group_offsets(group)[group]
    finally:
        admin.close()
    ends = _end_offsets(kafka_settings, topic)
    assert {tp.partition: o.offset for tp, o in committed.items()} == ends
    assert sum(ends.values()) == len(sent)

    # A new member of the same group resumes after the committed offsets: only new frames.
    producer = make_producer(kafka_settings, "test-producer")
    late = FrameMeta(camera_id="cam-a", seq=10, width=64, height=48, captured_at=start)
    producer.send(topic, key=b"cam-a", value=jpeg(99), headers=frame_headers(late)).get(timeout=30)
    producer.close()
    consumer = make_consumer(kafka_settings, group, "test-consumer-2", topic)
    try:
        again = poll_until(consumer, 2, timeout_s=8.0)
        assert [parse_frame_headers(r.headers) for r in again] == [late]  # type: ignore[attr-defined]
    finally:
        consumer.close()


def _end_offsets(settings: KafkaSettings, topic: str) -> dict[int, int]:
    consumer = KafkaConsumer(bootstrap_servers=settings.bootstrap_servers.split(","))
    try:
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        return {tp.partition: offset for tp, offset in consumer.end_offsets(parts).items()}
    finally:
        consumer.close()


def test_frame_larger_than_the_topic_allows_is_refused(kafka_settings: KafkaSettings) -> None:
    producer = make_producer(kafka_settings, "test-producer")
    try:
        with pytest.raises(MessageSizeTooLargeError):
            producer.send(
                kafka_settings.frames_topic,
                key=b"cam-a",
                value=bytes(frame_message_bytes(kafka_settings) + 1),
            ).get(timeout=30)
    finally:
        producer.close()


def test_a_full_size_frame_is_accepted(kafka_settings: KafkaSettings, unique_name: str) -> None:
    """A frame of max_frame_bytes plus headers fits the producer, the topic and the consumer."""
    meta = FrameMeta(
        camera_id="cam-big", seq=0, width=4096, height=2160, captured_at=datetime.now(UTC)
    )
    value = bytes(kafka_settings.max_frame_bytes)
    producer = make_producer(kafka_settings, "test-producer")
    try:
        producer.send(
            kafka_settings.frames_topic, key=b"cam-big", value=value, headers=frame_headers(meta)
        ).get(timeout=30)
    finally:
        producer.close()
    consumer = make_consumer(
        kafka_settings, f"test-{unique_name}", "test-consumer", kafka_settings.frames_topic
    )
    try:
        records = poll_until(consumer, 1)
        assert [len(r.value) for r in records] == [len(value)]  # type: ignore[attr-defined]
    finally:
        consumer.close()
