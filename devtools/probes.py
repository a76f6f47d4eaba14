"""Kafka and Redis probes of `maskwatch run`: group lag, topic growth, per-camera counters
and the summary table it prints."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import redis
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

from runtime.kafka import KafkaSettings, make_admin
from schemas.redis_state import Counters, Keys, counters_of


def group_lag(admin: KafkaAdminClient, consumer: KafkaConsumer, group: str, topic: str) -> int:
    """Records of `topic` that consumer group `group` has not committed yet (all partitions).

    A partition without a committed offset counts from its beginning (auto_offset_reset is
    earliest for every stage)."""
    partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
    if not partitions:
        return 0
    committed = admin.list_group_offsets({group: partitions}).get(group, {})
    ends = consumer.end_offsets(partitions)
    starts = consumer.beginning_offsets(partitions)
    lag = 0
    for tp in partitions:
        meta = committed.get(tp)
        position = meta.offset if meta is not None and meta.offset >= 0 else starts[tp]
        lag += max(0, ends[tp] - position)
    return lag


@contextlib.contextmanager
def kafka_probe(kafka: KafkaSettings) -> Iterator[tuple[KafkaAdminClient, KafkaConsumer]]:
    admin = make_admin(kafka, "maskwatch-run-probe")
    consumer = KafkaConsumer(
        bootstrap_servers=kafka.bootstrap_servers.split(","), client_id="maskwatch-run-probe"
    )
    try:
        yield admin, consumer
    finally:
        consumer.close()
        admin.close()


def camera_counters(client: redis.Redis, keys: Keys) -> dict[str, Counters]:
    """Lifetime counters of every registered camera, from the aggregator's Redis model."""
    cameras = sorted(str(c) for c in client.zrange(keys.registry, 0, -1))
    pipe = client.pipeline(transaction=False)
    for camera in cameras:
        pipe.hgetall(keys.camera_totals(camera))
    return {camera: counters_of(h) for camera, h in zip(cameras, pipe.execute(), strict=True)}


def since(now: dict[str, Counters], before: dict[str, Counters]) -> dict[str, Counters]:
    """Per-camera counts added since `before` (the snapshot taken when the run started)."""
    out = {}
    for camera, counts in now.items():
        base = before.get(camera, Counters())
        out[camera] = Counters(
            *(getattr(counts, f) - getattr(base, f) for f in Counters.__dataclass_fields__)
        )
    return {camera: c for camera, c in out.items() if c.frames > 0}


def summary_table(rows: dict[str, Counters]) -> str:
    """Per-camera table: frames, skipped, faces, masked, unmasked, compliance, plus a total."""
    header = (
        f"{'camera':<20} {'frames':>7} {'skipped':>7} {'faces':>6} {'masked':>7} "
        f"{'unmasked':>8} {'compliance':>10}"
    )
    lines = [header, "-" * len(header)]
    total = Counters()
    for camera, c in sorted(rows.items()):
        total = total + c
        lines.append(_row(camera, c))
    lines += ["-" * len(header), _row("all cameras", total)]
    return "\n".join(lines)


def _row(name: str, c: Counters) -> str:
    share = "-" if c.compliance is None else f"{100 * c.compliance:.1f} %"
    return (
        f"{name:<20} {c.frames:>7} {c.skipped:>7} {c.faces:>6} {c.with_mask:>7} "
        f"{c.without_mask:>8} {share:>10}"
    )


def records_in(consumer: KafkaConsumer, topic: str) -> int:
    """Records ever written to `topic` (sum of its partitions' end offsets)."""
    partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
    return sum(consumer.end_offsets(partitions).values()) if partitions else 0
