"""`maskwatch producer`: read this replica's share of the cameras and publish frames to Kafka.

Wiring only: settings and cameras.yaml are validated first (a bad file fails here, before
any connection), the replica keeps the cameras rendezvous hashing gives it, each camera gets
a worker thread, and all of them feed one bounded sender. SIGTERM stops the cameras, flushes
the buffer to Kafka and exits 0.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import click
from prometheus_client import CollectorRegistry
from pydantic import Field
from pydantic_settings import SettingsConfigDict

from runtime.backoff import BackoffPolicy
from runtime.kafka import KafkaSettings, make_producer
from runtime.logs import configure_logging, get_logger
from runtime.service import ServiceRuntime
from runtime.settings import (
    RuntimeSettings,
    ServiceSettings,
    load_settings,
    runtime_section,
    settings_options,
)
from workers.producer.camera import CameraWorker
from workers.producer.config import CameraConfig, ConfigError, load_cameras, parse_cameras
from workers.producer.health import HealthReporter, HealthSettings, HealthSink
from workers.producer.metrics import ProducerMetrics
from workers.producer.sender import FrameSender, FrameTransport, kafka_connector
from workers.producer.sharding import ShardingError, owned, resolve_replica
from workers.producer.source_secrets import SecretReferenceError
from workers.producer.sources import configure_ffmpeg, make_source

log = get_logger("producer")

#: Room left in a Kafka message for headers and record-batch overhead.
MESSAGE_OVERHEAD_BYTES = 2048
STALL_S = 10.0
"""A frame in flight this long with no acknowledgement at all: the broker is away (not ready).
A local broker acknowledges in milliseconds; a loaded one in well under this."""


class ProducerSettings(ServiceSettings):
    """Producer process settings (env prefix MASKWATCH_PRODUCER_; Kafka: MASKWATCH_KAFKA_)."""

    model_config = SettingsConfigDict(env_prefix="MASKWATCH_PRODUCER_")

    config: Path = Field(Path("cameras.yaml"), description="Path of the cameras YAML file.")
    cameras_yaml: str | None = Field(
        None, max_length=1_000_000, description="The cameras YAML itself; overrides --config."
    )
    runtime: RuntimeSettings = runtime_section(9101)
    replica_count: int = Field(1, ge=1, le=10_000, description="Producer replicas sharing cameras.")
    replica_index: int | None = Field(
        None, ge=0, le=9_999, description="This replica (0-based); default: pod-name ordinal."
    )
    pod_name: str | None = Field(
        None, max_length=253, description="Pod name; its -N suffix is the replica index."
    )
    buffer_frames: int = Field(
        64, ge=1, le=10_000, description="Frames buffered for Kafka before the oldest is dropped."
    )
    max_in_flight: int = Field(
        32, ge=1, le=1_000, description="Frames sent to Kafka and not yet acknowledged."
    )
    open_timeout_s: float = Field(10.0, ge=0.5, le=120, description="Source connect timeout.")
    read_timeout_s: float = Field(
        10.0, ge=0.5, le=120, description="A source silent this long is stalled: reconnect."
    )
    backoff_initial_s: float = Field(1.0, ge=0.05, le=60, description="First reconnect delay.")
    backoff_max_s: float = Field(30.0, ge=1, le=600, description="Longest reconnect delay.")
    shutdown_timeout_s: float = Field(
        20.0, ge=1, le=300, description="Time to flush buffered frames on SIGTERM."
    )
    health: HealthSettings = Field(
        default_factory=HealthSettings,
        description="Camera health to Redis for the API (off by default; Redis URL, prefix).",
    )


class Producer:
    """The cameras of one replica and their shared sender (usable in-process by tests)."""

    def __init__(
        self,
        cameras: list[CameraConfig],
        settings: ProducerSettings,
        kafka: KafkaSettings,
        metrics: ProducerMetrics,
        connect: Callable[[], FrameTransport] | None = None,
        client_id: str = "maskwatch-producer",
        health_sink: HealthSink | None = None,
    ) -> None:
        self.settings, self.metrics = settings, metrics
        self.stop_event = threading.Event()
        connect = connect or kafka_connector(
            partial(make_producer, kafka, client_id),
            kafka.frames_topic,
            max_block_ms=5_000,  # a send never blocks the sender thread longer than this
            bootstrap_timeout_ms=5_000,  # Kafka down at start: retry (and stop) promptly
        )
        self.sender = FrameSender(connect, metrics, settings.buffer_frames, settings.max_in_flight)
        backoff = BackoffPolicy(
            initial_s=settings.backoff_initial_s, max_s=settings.backoff_max_s, jitter=0.5
        )
        max_bytes = kafka.max_frame_bytes - MESSAGE_OVERHEAD_BYTES
        self.workers = [
            CameraWorker(
                camera,
                partial(
                    make_source,
                    camera,
                    settings.open_timeout_s,
                    settings.read_timeout_s,
                    self.stop_event.wait,
                ),
                self.sender.submit,
                metrics,
                max_bytes,
                backoff,
                self.stop_event,
            )
            for camera in cameras
        ]
        metrics.cameras.set(len(cameras))
        self.health = (
            HealthReporter(
                health_sink,
                [(w.camera, w.health) for w in self.workers],
                partial(metrics.totals_by_camera, "frames_dropped"),
                client_id,
                settings.health.interval_s,
            )
            if health_sink is not None
            else None
        )

    def start(self) -> None:
        self.sender.start()
        for worker in self.workers:
            worker.thread.start()
        if self.health is not None:
            self.health.start()

    def stop(self) -> dict[str, dict[str, float]]:
        """Stop the cameras and flush the sender; returns per-camera totals for the log."""
        deadline = time.monotonic() + self.settings.shutdown_timeout_s
        self.stop_event.set()
        if self.health is not None:
            self.health.stop()
        for worker in self.workers:
            worker.thread.join(max(0.0, deadline - time.monotonic()))
        self.sender.close(max(1.0, deadline - time.monotonic()))
        return {w.camera.id: self._totals(w) for w in self.workers}

    def _totals(self, worker: CameraWorker) -> dict[str, float]:
        camera = worker.camera.id
        return {
            "last_seq": worker.sequence.last,
            "encoded": self.metrics.total("frames_encoded", camera),
            "sent": self.metrics.total("frames_sent", camera),
            "dropped": self.metrics.total("frames_dropped", camera),
        }


def select_cameras(settings: ProducerSettings) -> tuple[int, list[CameraConfig]]:
    """This replica's index and the enabled cameras it owns, their secret references
    resolved; click errors (one readable line) for bad config or an unresolvable secret."""
    try:
        cameras = (
            parse_cameras(settings.cameras_yaml, "MASKWATCH_PRODUCER_CAMERAS_YAML")
            if settings.cameras_yaml
            else load_cameras(settings.config)
        )
        index = resolve_replica(settings.replica_index, settings.replica_count, settings.pod_name)
    except (ConfigError, ShardingError) as error:
        raise click.ClickException(str(error)) from None
    enabled = {c.id: c for c in cameras if c.enabled}
    mine = owned(enabled, index, settings.replica_count)
    try:  # only the cameras this replica reads need their secrets
        resolved = [enabled[camera_id].resolved(os.environ) for camera_id in mine]
    except SecretReferenceError as error:
        raise click.ClickException(str(error)) from None
    log.info(
        "cameras_assigned",
        replica_index=index,
        replica_count=settings.replica_count,
        configured=len(cameras),
        enabled=len(enabled),
        owned=len(mine),
    )
    return index, resolved


def run(settings: ProducerSettings, kafka: KafkaSettings) -> None:
    """Run until SIGTERM / SIGINT."""
    configure_logging(settings.runtime.log_level, settings.runtime.json_logs)
    configure_ffmpeg()
    index, cameras = select_cameras(settings)
    registry = CollectorRegistry()
    runtime = ServiceRuntime("producer", settings.runtime.health_port, registry)
    runtime.install_signal_handlers()
    sink: HealthSink | None = None
    if settings.health.enabled:
        # imported only when used: a producer without health starts without the Redis client
        from workers.producer.health_redis import RedisHealthSink

        sink = RedisHealthSink.of(settings.health)
    producer = Producer(
        cameras,
        settings,
        kafka,
        ProducerMetrics(registry),
        client_id=f"maskwatch-producer-{index}",
        health_sink=sink,
    )
    producer.start()
    try:
        while not runtime.stopping.wait(1.0):
            runtime.health.beat()
            delivering = producer.sender.delivering(STALL_S)
            runtime.health.set_ready(delivering, "" if delivering else "kafka unavailable")
    finally:
        log.info("producer_stopped", cameras=producer.stop())
        runtime.close()


@click.command(name="producer")
@settings_options(ProducerSettings)
def cli(**values: Any) -> None:
    """Read cameras (cameras.yaml) and publish JPEG frames to Kafka."""
    run(load_settings(ProducerSettings, values), load_settings(KafkaSettings, {}))
