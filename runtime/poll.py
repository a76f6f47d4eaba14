"""A poll that never raises for one bad record: corrupt records are located, skipped, reported.

kafka-python decodes every record inside `poll()` (header keys as UTF-8, record framing,
CRCs); one record that fails raises `CorruptRecordError` from `poll()` without naming its
partition or offset, and the next poll raises again at the same place: one bad record halts
a consumer for good. `poll_records` catches it, finds the partition by reading each
assigned partition from its position with a throwaway client (the bad one raises there),
seeks one past the bad offset (which also makes the client drop its broken fetch) and
returns the record's place, so the caller dead-letters it before it commits past it.

Limit (kafka-python's, stated in docs/notes/issue-12.md): the client parses a record batch
from its start, so records after a corrupt one in the same producer batch raise too; each
is then reported (and dead-lettered) in turn, one offset per poll.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import CorruptRecordError

from runtime.logs import get_logger

log = get_logger("poll")

PROBE_TIMEOUT_MS = 5_000
PROBE_CONFIG = frozenset(
    k
    for k in KafkaConsumer.DEFAULT_CONFIG
    if k.startswith(
        ("bootstrap", "security", "ssl_", "sasl_", "api_version", "max_partition", "fetch_")
    )
)
"""What the probe copies from the consumer: where the brokers are and how to reach them."""


@dataclass(frozen=True)
class CorruptRecord:
    """A record the client could not decode: where it is and what the client said."""

    topic: str
    partition: int
    offset: int
    error: str


@dataclass(frozen=True)
class Polled:
    """One poll: the records by partition, and the corrupt records skipped (if any)."""

    records: dict[TopicPartition, list[Any]]
    corrupt: tuple[CorruptRecord, ...] = ()


def poll_records(consumer: KafkaConsumer, timeout_ms: int, max_records: int) -> Polled:
    """`consumer.poll`, except that a corrupt record is skipped and reported, never raised.

    Raises CorruptRecordError only if no assigned partition reproduces the failure (then
    nothing is skipped and the caller treats it as an infrastructure failure).
    """
    try:
        return Polled(consumer.poll(timeout_ms=timeout_ms, max_records=max_records))
    except CorruptRecordError as error:
        found = _locate(consumer)
        if not found:
            raise
        for tp, offset in found:
            consumer.seek(tp, offset + 1)
            log.warning("corrupt_record", partition=tp.partition, offset=offset, error=str(error))
        return Polled(
            {}, tuple(CorruptRecord(tp.topic, tp.partition, o, str(error)[:500]) for tp, o in found)
        )


def _locate(consumer: KafkaConsumer) -> list[tuple[TopicPartition, int]]:
    """(partition, offset) of every corrupt record at a consumer position: read each
    unpaused partition from there with a throwaway group-less consumer; those that raise
    hold one. A separate client because the failed one keeps the half-parsed fetch of a bad
    partition. All of them, not the first: kafka-python spins forever in `poll()` on a
    partition whose fetch broke if its position is not moved (the error is raised once)."""
    positions = {
        tp: consumer.position(tp) for tp in sorted(set(consumer.assignment()) - consumer.paused())
    }
    probe = KafkaConsumer(
        **{k: v for k, v in consumer.config.items() if k in PROBE_CONFIG},
        group_id=None,
        enable_auto_commit=False,
        client_id="maskwatch-corrupt-probe",
    )
    found = []
    try:
        ends = probe.end_offsets(list(positions))
        for tp, position in positions.items():
            if position >= ends.get(tp, position + 1):
                continue  # nothing to read there, so nothing corrupt
            probe.assign([tp])
            probe.seek(tp, position)
            try:
                probe.poll(timeout_ms=PROBE_TIMEOUT_MS, max_records=1)
            except CorruptRecordError:
                found.append((tp, position))
        return found
    finally:
        probe.close()
