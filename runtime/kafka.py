"""Kafka access in one place: settings, topics, and producer / consumer / admin factories.

Settings fit frames: acks=all, no compression (JPEG does not compress), request size matched
to the frames topic, auto-commit off (every stage commits after its downstream write), and a
poll interval long enough for a slow batch of crowded frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import ConfigResource, ConfigResourceType
from kafka.errors import TopicAlreadyExistsError
from pydantic import Field
from pydantic_settings import SettingsConfigDict

from runtime.logs import get_logger
from runtime.settings import ServiceSettings

log = get_logger("kafka")

MiB = 1024 * 1024
HEADROOM_BYTES = 64 * 1024
"""Room for a record's key, headers and batch framing on top of the largest JPEG."""


class KafkaSettings(ServiceSettings):
    """Where Kafka is and what the topics are called (env prefix MASKWATCH_KAFKA_)."""

    model_config = SettingsConfigDict(env_prefix="MASKWATCH_KAFKA_")

    bootstrap_servers: str = Field("127.0.0.1:9092", description="Comma-separated host:port list.")
    frames_topic: str = Field("maskwatch.frames", description="Topic of JPEG frames.")
    results_topic: str = Field("maskwatch.results", description="Topic of frame results.")
    dead_letter_topic: str = Field("maskwatch.dead-letters", description="Topic of dead letters.")
    alerts_topic: str = Field("maskwatch.alerts", description="Topic of alert events.")
    frames_partitions: int = Field(12, ge=1, le=1024, description="Partitions of the frames topic.")
    results_partitions: int = Field(
        12, ge=1, le=1024, description="Partitions of the results topic."
    )
    replication_factor: int = Field(1, ge=1, le=5, description="Replicas of every topic.")
    max_frame_bytes: int = Field(
        4 * MiB, ge=64 * 1024, le=64 * MiB, description="Largest JPEG frame (bytes)."
    )

    @classmethod
    def with_topic_prefix(cls, prefix: str, partitions: int) -> KafkaSettings:
        """Settings whose four topics are `<prefix>.frames`, `.results`, `.dead-letters` and
        `.alerts`, with `partitions` each for frames and results: lets test runs and
        benchmarks share one broker without touching each other's (or production) topics."""
        return cls(
            frames_topic=f"{prefix}.frames",
            results_topic=f"{prefix}.results",
            dead_letter_topic=f"{prefix}.dead-letters",
            alerts_topic=f"{prefix}.alerts",
            frames_partitions=partitions,
            results_partitions=partitions,
        )


def frame_message_bytes(settings: KafkaSettings) -> int:
    """The largest frame record: the frames topic, producers and consumers all use this size."""
    return settings.max_frame_bytes + HEADROOM_BYTES


@dataclass(frozen=True)
class TopicSpec:
    """One topic and its settings (also what `existing_topics` reads back from the broker)."""

    name: str
    partitions: int
    retention_ms: int
    max_message_bytes: int

    def configs(self) -> dict[str, str]:
        """The topic-level configs the broker stores for this topic."""
        return {
            "retention.ms": str(self.retention_ms),
            "max.message.bytes": str(self.max_message_bytes),
            "cleanup.policy": "delete",
        }


HOUR_MS = 3600 * 1000
DAY_MS = 24 * HOUR_MS


def topic_specs(settings: KafkaSettings) -> list[TopicSpec]:
    """All topics: frames are perishable (1 h), results and dead letters are kept for audits."""
    return [
        TopicSpec(
            settings.frames_topic,
            settings.frames_partitions,
            HOUR_MS,
            frame_message_bytes(settings),
        ),
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
        "max_request_size": frame_message_bytes(settings),
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
        "fetch_max_bytes": max(frame_message_bytes(settings) * 4, 52_428_800),
        "max_partition_fetch_bytes": frame_message_bytes(settings),
    }
    config.update(overrides)
    consumer = KafkaConsumer(**config)
    if topics:
        consumer.subscribe(list(topics))
    return consumer


def make_admin(
    settings: KafkaSettings, client_id: str = "maskwatch-admin", **overrides: Any
) -> KafkaAdminClient:
    return KafkaAdminClient(**{**_common(settings, client_id), **overrides})


@dataclass(frozen=True)
class BrokerInfo:
    """What the admin API says about the cluster (used by health checks and `stack status`)."""

    cluster_id: str
    broker_ids: tuple[int, ...]
    version: tuple[int, ...]
    """Broker version as the client infers it from the broker's API versions, e.g. (4, 1)."""


def broker_info(settings: KafkaSettings, timeout_ms: int = 5_000) -> BrokerInfo:
    """Ask the cluster for its id, its unfenced brokers and their version (raises if down)."""
    admin = make_admin(
        settings, "maskwatch-health", bootstrap_timeout_ms=timeout_ms, request_timeout_ms=timeout_ms
    )
    try:
        cluster = admin.describe_cluster()
        brokers = tuple(b["broker_id"] for b in cluster["brokers"] if not b.get("is_fenced"))
        version = admin.get_broker_version_data(brokers[0]).broker_version if brokers else ()
        return BrokerInfo(str(cluster["cluster_id"]), brokers, tuple(version))
    finally:
        admin.close()


def existing_topics(settings: KafkaSettings, names: list[str]) -> dict[str, TopicSpec]:
    """Read back partitions and configs of those of `names` that exist, as TopicSpecs."""
    admin = make_admin(settings)
    try:
        topics = set(admin.list_topics())
        present = [n for n in names if n in topics]
        if not present:
            return {}
        partitions = {t["name"]: len(t["partitions"]) for t in admin.describe_topics(present)}
        resources = [ConfigResource(ConfigResourceType.TOPIC, n) for n in present]
        configs = admin.describe_configs(resources, config_filter="all")["topic"]
    finally:
        admin.close()

    def value(topic: str, key: str) -> int:
        return int(configs[topic][key]["value"])

    return {
        name: TopicSpec(
            name, partitions[name], value(name, "retention.ms"), value(name, "max.message.bytes")
        )
        for name in present
    }


def create_topics(settings: KafkaSettings) -> dict[str, str]:
    """Create missing topics (idempotent): topic → "created" | "exists" | "differs: ...".

    An existing topic is never altered; a difference from its spec is reported so an operator
    decides (partitions can only grow, and that re-keys cameras onto other partitions).
    """
    specs = topic_specs(settings)
    before = existing_topics(settings, [s.name for s in specs])
    admin = make_admin(settings)
    try:
        outcome: dict[str, str] = {}
        for spec in specs:
            if spec.name in before:
                found = before[spec.name]
                outcome[spec.name] = "exists" if found == spec else f"differs: {found}"
                continue
            request = {
                spec.name: {
                    "num_partitions": spec.partitions,
                    "replication_factor": settings.replication_factor,
                    "configs": spec.configs(),
                }
            }
            try:
                admin.create_topics(request, wait_for_metadata=True)
                outcome[spec.name] = "created"
            except TopicAlreadyExistsError:
                outcome[spec.name] = "exists"
            log.info("topic", topic=spec.name, outcome=outcome[spec.name])
        return outcome
    finally:
        admin.close()


def delete_topics(settings: KafkaSettings, names: list[str]) -> None:
    """Delete those of `names` that exist (tests clean up their per-test topics with this)."""
    admin = make_admin(settings)
    try:
        topics = set(admin.list_topics())
        present = [n for n in names if n in topics]
        if present:
            admin.delete_topics(present)
    finally:
        admin.close()
