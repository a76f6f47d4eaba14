"""Kafka access in one place: settings, topics, and producer / consumer / admin factories.

Settings fit frames: acks=all, no compression (JPEG does not compress), request size matched
to the frames topic, auto-commit off (every stage commits after its downstream write), and a
poll interval long enough for a slow batch of crowded frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError
from pydantic import Field
from pydantic_settings import SettingsConfigDict

from workers.common.logs import get_logger
from workers.common.settings import ServiceSettings

log = get_logger("kafka")

MiB = 1024 * 1024


class KafkaSettings(ServiceSettings):
    """Where Kafka is and what the topics are called (env prefix MASKWATCH_KAFKA_)."""

    model_config = SettingsConfigDict(env_prefix="MASKWATCH_KAFKA_", extra="forbid", frozen=True)

    bootstrap_servers: str = Field("127.0.0.1:9092", description="Comma-separated host:port list.")
    frames_topic: str = Field("maskwatch.frames", description="Topic of JPEG frames.")
    results_topic: str = Field("maskwatch.results", description="Topic of frame results.")
    dead_letter_topic: str = Field("maskwatch.dead-letters", description="Topic of dead letters.")
    alerts_topic: str = Field("maskwatch.alerts", description="Topic of alert events.")
    frames_partitions: int = Field(12, ge=1, le=1024, description="Partitions of the frames topic.")
    results_partitions: int = Field(12, ge=1, le=1024, description="Partitions of the results topic.")
    replication_factor: int = Field(1, ge=1, le=5, description="Replicas of every topic.")
    max_frame_bytes: int = Field(
        4 * MiB, ge=64 * 1024, le=64 * MiB, description="Largest frame message (bytes)."
    )


@dataclass(frozen=True)
class TopicSpec:
    """One topic and its settings."""

    name: str
    partitions: int
    retention_ms: int
    max_message_bytes: int

    def new_topic(self, replication_factor: int) -> NewTopic:
        return NewTopic(
            name=self.name,
            num_partitions=self.partitions,
            replication_factor=replication_factor,
            topic_configs={
                "retention.ms": str(self.retention_ms),
                "max.message.bytes": str(self.max_message_bytes),
                "cleanup.policy": "delete",
            },
        )


HOUR_MS = 3600 * 1000
DAY_MS = 24 * HOUR_MS


def topic_specs(settings: KafkaSettings) -> list[TopicSpec]:
    """All topics: frames are perishable (1 h), results and dead letters are kept for audits."""
    return [
        TopicSpec(settings.frames_topic, settings.frames_partitions, HOUR_MS, settings.max_frame_bytes),
        TopicSpec(settings.results_topic, settings.results_partitions, 7 * DAY_MS, 1 * MiB),
        TopicSpec(settings.dead_letter_topic, 3, 14 * DAY_MS, 1 * MiB),
        TopicSpec(settings.alerts_topic, 3, 30 * DAY_MS, 1 * MiB),
    ]


def _common(settings: KafkaSettings, client_id: str) -> dict[str, Any]:
    return {"bootstrap_servers": settings.bootstrap_servers.split(","), "client_id": client_id}


def make_producer(settings: KafkaSettings, client_id: str, **overrides: Any) -> KafkaProducer:
    """A producer for frames or results: acks=all, idempotent, uncompressed, sized for frames."""
    config: dict[str, Any] = {
        **_common(settings, client_id),
        "acks": "all",
        "enable_idempotence": True,
        "compression_type": None,
        "max_request_size": settings.max_frame_bytes + 64 * 1024,
        "linger_ms": 5,
        "retries": 2**31 - 1,
        "delivery_timeout_ms": 120_000,
        "request_timeout_ms": 30_000,
        "max_in_flight_requests_per_connection": 5,
    }
    config.update(overrides)
    return KafkaProducer(**config)


def make_consumer(
    settings: KafkaSettings, group_id: str, client_id: str, *topics: str, **overrides: Any
) -> KafkaConsumer:
    """A consumer-group member with manual commits and room for slow batches."""
    config: dict[str, Any] = {
        **_common(settings, client_id),
        "group_id": group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "max_poll_records": 32,
        "max_poll_interval_ms": 300_000,
        "session_timeout_ms": 10_000,
        "heartbeat_interval_ms": 3_000,
        "fetch_max_bytes": max(settings.max_frame_bytes * 4, 52_428_800),
        "max_partition_fetch_bytes": settings.max_frame_bytes + 64 * 1024,
    }
    config.update(overrides)
    consumer = KafkaConsumer(**config)
    if topics:
        consumer.subscribe(list(topics))
    return consumer


def make_admin(settings: KafkaSettings, client_id: str = "maskwatch-admin") -> KafkaAdminClient:
    return KafkaAdminClient(**_common(settings, client_id))


def create_topics(settings: KafkaSettings) -> dict[str, str]:
    """Create missing topics (idempotent): returns topic → "created" | "exists"."""
    admin = make_admin(settings)
    try:
        existing = set(admin.list_topics())
        outcome: dict[str, str] = {}
        for spec in topic_specs(settings):
            if spec.name in existing:
                outcome[spec.name] = "exists"
                continue
            try:
                admin.create_topics([spec.new_topic(settings.replication_factor)])
                outcome[spec.name] = "created"
            except TopicAlreadyExistsError:
                outcome[spec.name] = "exists"
            log.info("topic", topic=spec.name, outcome=outcome[spec.name])
        return outcome
    finally:
        admin.close()
