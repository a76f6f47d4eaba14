"""Camera health on the producer side: the pure record arithmetic, the camera loop's states,
the reporter (against an in-memory sink), and the Redis sink against the stack's Redis."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis

from runtime.backoff import BackoffPolicy
from runtime.kafka import KafkaSettings
from schemas.camera_health import CameraHealth, ConfiguredCamera
from schemas.redis_state import Keys
from tests.workers.producer.conftest import RunProducer, free_port, wait_until
from tests.workers.producer.fakes import ScriptedSource, new_metrics
from workers.producer.camera import CameraWorker
from workers.producer.config import CameraConfig
from workers.producer.health import (
    HealthReporter,
    HealthSettings,
    SourceHealth,
    actual_fps,
    health_record,
    record_ttl_s,
)
from workers.producer.health_redis import RedisHealthSink
from workers.producer.metrics import DropReason
from workers.producer.sender import OutgoingFrame

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
CAM = CameraConfig(id="gate", source="rtsp://camera/stream", fps=2, labels={"site": "north"})


@pytest.mark.parametrize(
    ("now", "before", "elapsed", "fps"),
    [(10, 0, 5.0, 2.0), (3, 3, 5.0, 0.0), (1, 5, 5.0, 0.0), (4, 0, 0.0, 0.0), (7, 0, 3.0, 2.333)],
)
def test_actual_fps_is_frames_encoded_per_second_between_reports(
    now: int, before: int, elapsed: float, fps: float
) -> None:
    assert actual_fps(now, before, elapsed) == fps


def test_record_carries_configured_and_measured_rates_and_a_short_ttl() -> None:
    source = SourceHealth("connected", T0, last_frame_at=T0, encoded=9, reconnects=2)
    record = health_record(CAM, source, 1.8, 3, "producer-0", T0 + timedelta(seconds=1), 15)
    assert (record.configured_fps, record.actual_fps) == (2.0, 1.8)
    assert (record.reconnects, record.dropped, record.state) == (2, 3, "connected")
    assert record.schema_version == 1 and record.ttl_s == 15
    assert record_ttl_s(5.0) == 15 and record_ttl_s(0.5) == 3


def test_state_changes_keep_their_time_and_the_last_error() -> None:
    health = SourceHealth("connecting", T0)
    health.enter("connected", T0 + timedelta(seconds=1))
    health.enter("connected", T0 + timedelta(seconds=9))  # no change: since stays
    assert health.since == T0 + timedelta(seconds=1)
    health.enter("disconnected", T0 + timedelta(seconds=10), "x" * 400)
    assert health.state == "disconnected" and len(health.last_error or "") == 300


def test_the_camera_loop_reports_failures_reconnects_and_frames() -> None:
    stop, sent = threading.Event(), list[OutgoingFrame]()
    sources = iter([ScriptedSource("ffE"), ScriptedSource("", fail_opens=1), ScriptedSource("f.")])
    camera = CameraConfig(id="gate", source="rtsp://camera/stream", fps=60)
    policy = BackoffPolicy(initial_s=0.01, max_s=0.02, jitter=0.5)
    cam = CameraWorker(
        camera, lambda: next(sources), sent.append, new_metrics(), 10**6, policy, stop
    )
    cam.thread.start()
    cam.thread.join(5)
    assert cam.health.state == "finished"
    assert cam.health.reconnects == 2 and cam.health.encoded == len(sent) >= 1
    assert cam.health.last_frame_at is not None and cam.health.last_error


class ListSink:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.registered: list[list[ConfiguredCamera]] = []
        self.published: list[list[CameraHealth]] = []

    def register(self, cameras: list[ConfiguredCamera], now: datetime) -> None:
        if self.fail:
            raise ConnectionError("redis down")
        self.registered.append(cameras)

    def publish(self, records: list[CameraHealth]) -> None:
        self.published.append(records)

    def close(self) -> None:
        return None


def test_reporter_registers_every_camera_and_counts_drops_per_camera() -> None:
    metrics = new_metrics()
    metrics.dropped("gate", DropReason.BUFFER_FULL, 4)
    metrics.dropped("gate", DropReason.OVERSIZED)
    metrics.dropped("lobby", DropReason.OVERSIZED)
    never = CameraConfig(id="never", source="rtsp://nowhere/stream", fps=1)
    sink = ListSink()
    reporter = HealthReporter(
        sink,
        [(CAM, SourceHealth("connected", T0, encoded=10)), (never, SourceHealth("connecting", T0))],
        lambda: metrics.totals_by_camera("frames_dropped"),
        "producer-0",
        interval_s=5,
        clock=lambda: T0,
    )
    records = reporter.report()
    assert [c.camera_id for c in sink.registered[0]] == ["gate", "never"]
    assert sink.registered[0][0].labels == {"site": "north"}
    assert {r.camera_id: r.dropped for r in records} == {"gate": 5, "never": 0}
    assert records[1].state == "connecting" and records[1].last_frame_at is None


def test_a_failing_sink_never_stops_the_reporter() -> None:
    reporter = HealthReporter(
        ListSink(fail=True), [(CAM, SourceHealth("connected", T0))], dict, "p", 5, lambda: T0
    )
    assert len(reporter.report()) == 1  # logged, not raised
    assert len(reporter.report()) == 1


def members(client: redis.Redis, key: str) -> list[str]:
    found: list[bytes] = client.zrange(key, 0, -1)  # type: ignore[assignment]
    return sorted(m.decode() for m in found)


@pytest.mark.integration
def test_redis_sink_writes_records_with_ttl_and_the_configured_set(
    redis_client: redis.Redis, redis_prefix: str
) -> None:
    keys = Keys(redis_prefix)
    sink = RedisHealthSink(redis.Redis(host="127.0.0.1", port=6379), keys)
    now = datetime.now(UTC)
    info = ConfiguredCamera(
        camera_id="gate", labels={"site": "north"}, configured_fps=2, producer="p"
    )
    old = ConfiguredCamera(camera_id="gone", configured_fps=2, producer="p")
    sink.register([old], now - timedelta(hours=2))
    sink.register([info], now)
    record = health_record(CAM, SourceHealth("disconnected", now), 0.0, 0, "p", now, 15)
    sink.publish([record])
    sink.close()
    # the old registration was pruned by the newer one (older than CONFIGURED_TTL_S)
    assert members(redis_client, keys.configured) == ["gate"]
    stored = redis_client.get(keys.health("gate"))
    assert stored is not None and CameraHealth.model_validate_json(stored) == record
    assert 0 < redis_client.ttl(keys.health("gate")) <= 15
    configured = redis_client.get(keys.configured_camera("gate"))
    assert configured is not None and ConfiguredCamera.model_validate_json(configured) == info
    assert redis_client.ttl(keys.configured_camera("gate")) > 0


@pytest.mark.integration
def test_a_running_producer_reports_a_working_and_a_dead_camera(
    crowd_images: Path,
    kafka_settings: KafkaSettings,
    run_producer: RunProducer,
    redis_client: redis.Redis,
    redis_prefix: str,
) -> None:
    keys = Keys(redis_prefix)
    cameras = [
        CameraConfig(id="folder-cam", source=f"folder:{crowd_images}", fps=2, loop=True),
        CameraConfig(id="ghost-rtsp", source=f"rtsp://127.0.0.1:{free_port()}/cam", fps=2),
    ]
    sink = RedisHealthSink(redis.Redis(host="127.0.0.1", port=6379), keys)
    producer, _ = run_producer(
        cameras, kafka_settings, health_sink=sink, health=HealthSettings(interval_s=0.5)
    )

    def record(camera: str) -> CameraHealth | None:
        text = redis_client.get(keys.health(camera))
        return None if text is None else CameraHealth.model_validate_json(text)

    def reported() -> bool:
        folder, ghost = record("folder-cam"), record("ghost-rtsp")
        return bool(folder and folder.actual_fps > 0 and ghost and ghost.reconnects >= 1)

    wait_until(reported, 30, "health of both cameras")
    folder, ghost = record("folder-cam"), record("ghost-rtsp")
    assert folder is not None and ghost is not None
    assert folder.state == "connected" and folder.last_frame_at is not None
    assert 0 < folder.actual_fps <= 2.0 * 1.5 and folder.configured_fps == 2.0
    assert ghost.state in ("disconnected", "connecting") and ghost.last_frame_at is None
    assert ghost.last_error
    assert members(redis_client, keys.configured) == ["folder-cam", "ghost-rtsp"]
    producer.stop()
