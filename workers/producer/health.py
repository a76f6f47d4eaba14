"""Camera health: each camera's source state, reported every few seconds through a sink.

Why: a camera that never connects sends no frame, so nothing downstream of Kafka can know it
exists; its producer is the one place that knows it is configured, whether its source is
open, when it last read a frame and how often it had to reconnect. Each `CameraWorker`
keeps a `SourceHealth` (written by its own thread only); a `HealthReporter` thread turns
them into `CameraHealth` records (`schemas/camera_health.py`) every `interval_s` and hands
them to a `HealthSink`. The sink is optional (a producer without one runs exactly as
before), and a sink that fails is logged and retried at the next report: health never
stops frames.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from pydantic import ConfigDict, Field

from runtime.logs import get_logger
from runtime.redis import RedisState
from schemas.camera_health import CameraHealth, ConfiguredCamera, SourceState
from schemas.common import utc_now
from workers.producer.config import CameraConfig

log = get_logger("producer.health")


class HealthSettings(RedisState):
    """The `health` section: where camera health goes (off: nowhere, the producer still runs)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(False, description="Publish camera health to Redis (for the API).")
    interval_s: float = Field(5.0, ge=0.5, le=300, description="Seconds between health reports.")


@dataclass
class SourceHealth:
    """One camera's source as its worker thread last saw it (that thread writes; the reporter
    only reads whole attribute values, which the GIL keeps consistent one by one)."""

    state: SourceState
    since: datetime
    last_frame_at: datetime | None = None
    encoded: int = 0
    reconnects: int = 0
    last_error: str | None = None

    def enter(self, state: SourceState, at: datetime, error: str | None = None) -> None:
        if state != self.state:
            self.state, self.since = state, at
        if error is not None:
            self.last_error = error[:300]


def actual_fps(encoded_now: int, encoded_before: int, elapsed_s: float) -> float:
    """Frames per second encoded between two reports (0 for an empty or backwards span)."""
    if elapsed_s <= 0 or encoded_now < encoded_before:
        return 0.0
    return round((encoded_now - encoded_before) / elapsed_s, 3)


def health_record(
    camera: CameraConfig,
    source: SourceHealth,
    fps: float,
    dropped: int,
    producer: str,
    now: datetime,
    ttl_s: int,
) -> CameraHealth:
    """The record one report publishes for one camera (pure)."""
    return CameraHealth(
        camera_id=camera.id,
        producer=producer,
        state=source.state,
        since=source.since,
        last_frame_at=source.last_frame_at,
        configured_fps=camera.fps,
        actual_fps=fps,
        reconnects=source.reconnects,
        dropped=dropped,
        last_error=source.last_error,
        updated_at=now,
        ttl_s=ttl_s,
    )


def record_ttl_s(interval_s: float) -> int:
    """A record outlives two missed reports, no more: a dead producer's claim fades fast."""
    return max(3, round(3 * interval_s))


class HealthSink(Protocol):
    """Where health reports go (Redis in production, a list in unit tests)."""

    def register(self, cameras: list[ConfiguredCamera], now: datetime) -> None: ...

    def publish(self, records: list[CameraHealth]) -> None: ...

    def close(self) -> None: ...


class HealthReporter:
    """Reports every camera's health every `interval_s` on its own thread."""

    def __init__(
        self,
        sink: HealthSink,
        cameras: list[tuple[CameraConfig, SourceHealth]],
        dropped: Callable[[], dict[str, float]],
        producer: str,
        interval_s: float,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.sink, self.cameras, self.dropped = sink, cameras, dropped
        self.producer, self.interval_s, self.clock = producer, interval_s, clock
        self.stop_event = threading.Event()
        self._encoded = {camera.id: 0 for camera, _ in cameras}
        self._last_report = time.monotonic()
        self.thread = threading.Thread(target=self._run, name="camera-health", daemon=True)

    def configured(self) -> list[ConfiguredCamera]:
        return [
            ConfiguredCamera(
                camera_id=c.id, labels=c.labels, configured_fps=c.fps, producer=self.producer
            )
            for c, _ in self.cameras
        ]

    def report(self) -> list[CameraHealth]:
        """One report: every camera's record, registered and published (errors logged)."""
        elapsed_s = time.monotonic() - self._last_report
        self._last_report += elapsed_s
        now, dropped = self.clock(), self.dropped()
        ttl_s = record_ttl_s(self.interval_s)
        records = []
        for camera, source in self.cameras:
            encoded = source.encoded
            fps = actual_fps(encoded, self._encoded[camera.id], elapsed_s)
            self._encoded[camera.id] = encoded
            records.append(
                health_record(
                    camera, source, fps, int(dropped.get(camera.id, 0)), self.producer, now, ttl_s
                )
            )
        try:
            self.sink.register(self.configured(), now)
            self.sink.publish(records)
        except Exception as error:  # Redis down: frames go on, the next report retries
            log.warning("camera_health_not_published", error=str(error))
        return records

    def _run(self) -> None:
        while not self.stop_event.wait(self.interval_s):
            self.report()

    def start(self) -> None:
        self.report()  # registered at start-up: configured cameras are listed at once
        self.thread.start()

    def stop(self) -> None:
        self.stop_event.set()
        if self.thread.is_alive():
            self.thread.join(5)
        self.sink.close()
