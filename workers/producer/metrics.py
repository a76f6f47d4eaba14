"""Prometheus metrics of a producer process, per camera where it matters.

Metrics live in a registry the process owns (not the global one), so tests and benchmarks
can run several producers in one interpreter.
"""

from __future__ import annotations

import time
from enum import StrEnum

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class DropReason(StrEnum):
    """Why a frame that was read never reached Kafka."""

    BUFFER_FULL = "buffer_full"  # Kafka slow or down: the oldest buffered frame made room
    OVERSIZED = "oversized"  # could not be made to fit the topic's message size
    DECODE_FAILED = "decode_failed"  # the source delivered an undecodable frame
    DELIVERY_FAILED = "delivery_failed"  # Kafka rejected it or delivery timed out
    SHUTDOWN = "shutdown"  # still buffered when the flush deadline ran out


class ProducerMetrics:
    """All producer metrics; label `camera` is the camera id."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        ns = "maskwatch_producer"
        self.frames_read = Counter(
            f"{ns}_frames_read", "Frames grabbed from the source.", ["camera"], registry=registry
        )
        self.frames_encoded = Counter(
            f"{ns}_frames_encoded",
            "Frames kept by sampling and encoded.",
            ["camera"],
            registry=registry,
        )
        self.frames_degraded = Counter(
            f"{ns}_frames_degraded",
            "Frames re-encoded or shrunk to fit the message size.",
            ["camera"],
            registry=registry,
        )
        self.frames_sent = Counter(
            f"{ns}_frames_sent", "Frames acknowledged by Kafka.", ["camera"], registry=registry
        )
        self.frames_dropped = Counter(
            f"{ns}_frames_dropped",
            "Frames lost, by reason.",
            ["camera", "reason"],
            registry=registry,
        )
        self.reconnects = Counter(
            f"{ns}_reconnects",
            "Source failures followed by a reconnect.",
            ["camera"],
            registry=registry,
        )
        self.connected = Gauge(
            f"{ns}_camera_connected", "1 while the source is open.", ["camera"], registry=registry
        )
        self.last_frame_age = Gauge(
            f"{ns}_last_frame_age_seconds",
            "Seconds since the last frame was read.",
            ["camera"],
            registry=registry,
        )
        self.encode_seconds = Histogram(
            f"{ns}_encode_seconds",
            "Time to downscale and JPEG-encode a frame.",
            ["camera"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25),
            registry=registry,
        )
        self.buffered = Gauge(
            f"{ns}_buffered_frames", "Frames waiting in the send buffer.", registry=registry
        )
        self.in_flight = Gauge(
            f"{ns}_in_flight_frames",
            "Frames handed to Kafka, not yet acknowledged.",
            registry=registry,
        )
        self.cameras = Gauge(f"{ns}_cameras", "Cameras this replica reads.", registry=registry)

    def track_frame_age(self, camera: str, last_frame_monotonic: list[float]) -> None:
        """Report the age of a camera's last frame at scrape time (`[monotonic seconds]`)."""
        self.last_frame_age.labels(camera).set_function(
            lambda: time.monotonic() - last_frame_monotonic[0]
        )

    def total(self, counter: str, camera: str) -> float:
        """A counter's total for one camera, summed over its other labels (for summaries)."""
        return sum(
            sample.value
            for metric in self.registry.collect()
            if metric.name == f"maskwatch_producer_{counter}"
            for sample in metric.samples
            if sample.name.endswith("_total") and sample.labels.get("camera") == camera
        )

    def totals_by_camera(self, counter: str) -> dict[str, float]:
        """A counter's total per camera, summed over its other labels, in one registry pass
        (the health report needs every camera's; `total` per camera would pass once each)."""
        out: dict[str, float] = {}
        for metric in self.registry.collect():
            if metric.name != f"maskwatch_producer_{counter}":
                continue
            for sample in metric.samples:
                camera = sample.labels.get("camera")
                if sample.name.endswith("_total") and camera is not None:
                    out[camera] = out.get(camera, 0.0) + sample.value
        return out

    def dropped(self, camera: str, reason: DropReason, n: int = 1) -> None:
        self.frames_dropped.labels(camera, reason.value).inc(n)
