"""Read-only reading of the results topic: no consumer group, partitions assigned, seek by time.

Why no group: a tool that watches or exports results must never move the offsets of the
services (or of anyone else), and several copies of it must each see every result. With no
`group_id` Kafka has nothing to commit to; the reader assigns itself every partition and
positions itself by time with `offsets_for_times` (the broker's time index of the record
timestamps, i.e. when the detector published each result).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from runtime.kafka import KafkaSettings
from schemas.common import SchemaError, decode
from schemas.result import SUPPORTED_RESULT_VERSIONS, FrameResult, Label

POLL_MS = 500


@dataclass(frozen=True)
class Filter:
    """Which results to keep: one camera (by key, before decoding) and/or one face label."""

    camera: str | None = None
    label: Label | None = None

    def keeps_key(self, key: bytes | None) -> bool:
        return self.camera is None or key == self.camera.encode()

    def keeps(self, result: FrameResult) -> bool:
        if self.camera is not None and result.camera_id != self.camera:
            return False
        return self.label is None or any(face.label == self.label for face in result.faces)


@dataclass(frozen=True)
class Read:
    """One record of the results topic: where it was, its raw value, and what it decoded to."""

    partition: int
    offset: int
    timestamp_ms: int
    value: bytes
    result: FrameResult | None
    error: SchemaError | None
    """Why the value did not decode (a consumer's own dead letter); None when `result` is set."""


def open_reader(settings: KafkaSettings, client_id: str) -> KafkaConsumer:
    """A consumer outside any group (nothing to commit, nobody's offsets touched)."""
    return KafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers.split(","),
        client_id=client_id,
        group_id=None,
        enable_auto_commit=False,
        max_partition_fetch_bytes=2 * 1024 * 1024,
    )


def assign_all(consumer: KafkaConsumer, topic: str) -> list[TopicPartition]:
    """Assign every partition of `topic` to the reader; raises if the topic does not exist."""
    numbers = consumer.partitions_for_topic(topic)
    if not numbers:
        raise LookupError(f"topic {topic!r} does not exist (or has no partitions)")
    partitions = [TopicPartition(topic, n) for n in sorted(numbers)]
    consumer.assign(partitions)
    return partitions


def offsets_at(
    consumer: KafkaConsumer, partitions: list[TopicPartition], at_ms: int
) -> dict[TopicPartition, int]:
    """Per partition, the first offset whose record timestamp is >= `at_ms` (the partition's
    end offset when there is none yet)."""
    found = consumer.offsets_for_times(dict.fromkeys(partitions, at_ms))
    ends: dict[TopicPartition, int] = consumer.end_offsets(partitions)
    return {tp: found[tp].offset if found.get(tp) is not None else ends[tp] for tp in partitions}


def seek_all(consumer: KafkaConsumer, offsets: dict[TopicPartition, int]) -> None:
    for tp, offset in offsets.items():
        consumer.seek(tp, offset)


def decode_record(record: Any) -> Read:
    """A ConsumerRecord as a `Read`: the result, or the reason it is not one."""
    value: bytes = record.value or b""
    try:
        result, error = decode(FrameResult, value, SUPPORTED_RESULT_VERSIONS), None
    except SchemaError as failure:
        result, error = None, failure
    return Read(record.partition, record.offset, record.timestamp, value, result, error)


def _wanted(read: Read, keep: Filter) -> bool:
    return read.result is None or keep.keeps(read.result)


def follow(consumer: KafkaConsumer, keep: Filter) -> Iterator[Read]:
    """Every record from the current positions on, forever (live tail)."""
    while True:
        batches = consumer.poll(timeout_ms=POLL_MS)
        for records in batches.values():
            for record in records:
                if keep.keeps_key(record.key):
                    read = decode_record(record)
                    if _wanted(read, keep):
                        yield read


def read_between(
    consumer: KafkaConsumer,
    partitions: list[TopicPartition],
    start_ms: int,
    end_ms: int,
    keep: Filter,
) -> Iterator[Read]:
    """Records published in [start_ms, end_ms), partition by partition in offset order.

    The end is fixed before reading (offsets_for_times of `end_ms`), so an export of a past
    range is repeatable and finishes even while detectors keep writing.
    """
    starts = offsets_at(consumer, partitions, start_ms)
    stops = offsets_at(consumer, partitions, end_ms)
    for tp in partitions:
        if starts[tp] >= stops[tp]:
            continue
        consumer.assign([tp])
        consumer.seek(tp, starts[tp])
        while consumer.position(tp) < stops[tp]:
            for record in consumer.poll(timeout_ms=POLL_MS).get(tp, []):
                in_range = record.offset < stops[tp] and start_ms <= record.timestamp < end_ms
                if in_range and keep.keeps_key(record.key):
                    read = decode_record(record)
                    if _wanted(read, keep):
                        yield read
    consumer.assign(partitions)
