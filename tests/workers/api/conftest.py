"""A real API (uvicorn in a thread) over the stack's Redis, fed by a real Aggregator."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import uvicorn

from schemas.alert import AlertEvent
from schemas.camera_health import ConfiguredCamera
from schemas.common import encode
from schemas.redis_state import Keys
from schemas.result import FrameResult
from workers.aggregator.core import Aggregator
from workers.aggregator.settings import AggregatorSettings
from workers.api.app import create_app
from workers.api.settings import ApiSettings
from workers.producer.config import CameraConfig
from workers.producer.health import SourceHealth, health_record
from workers.producer.health_redis import RedisHealthSink


class Rec:
    def __init__(self, value: bytes) -> None:
        self.topic, self.partition, self.offset, self.key, self.value = "t", 0, 0, None, value


@dataclass
class Feeder:
    """Applies results to Redis exactly as the aggregator service does."""

    aggregator: Aggregator
    alerts: list[AlertEvent] = field(default_factory=list)

    def feed(self, results: list[FrameResult], now: float | None = None) -> None:
        self.aggregator.handle([Rec(encode(r)) for r in results], now)

    def silence_check(self, now: float | None = None) -> None:
        self.aggregator.check_silence(now)


@pytest.fixture
def feeder(redis_prefix: str) -> Iterator[Feeder]:
    settings = AggregatorSettings(
        key_prefix=redis_prefix, min_faces=10, alert_window="1m", cooldown_s=0, silent_after_s=30
    )
    client = redis.Redis(host="127.0.0.1", port=6379, decode_responses=True)
    events: list[AlertEvent] = []
    yield Feeder(Aggregator(settings, client, events.append), events)
    client.close()


class LiveServer:
    """uvicorn serving an app on a free loopback port, in a background thread."""

    def __init__(self, app: Any) -> None:
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self.health_url = f"http://127.0.0.1:{app.state.health_port}"
        """The health port: /metrics, /healthz, /readyz (not on the public `url`)."""

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def serve(settings: ApiSettings) -> LiveServer:
    """The app on free ports: its public one and its health port (any free one)."""
    health = settings.runtime.model_copy(update={"health_port": 0})
    return LiveServer(create_app(settings.model_copy(update={"runtime": health})))


def cameras_when(
    url: str, ready: Callable[[dict[str, Any]], bool], timeout_s: float = 5.0, **params: Any
) -> dict[str, Any]:
    """GET /api/v1/cameras until `ready(body)`: the overview follows Redis within about
    `stream_coalesce_s`, not within the write's own round trip."""
    deadline = time.monotonic() + timeout_s
    while True:
        body: dict[str, Any] = httpx.get(f"{url}/api/v1/cameras", params=params).json()
        if ready(body) or time.monotonic() > deadline:
            return body
        time.sleep(0.05)


def camera_ids(body: dict[str, Any]) -> list[str]:
    return [c["camera_id"] for c in body["cameras"]]


@pytest.fixture
def api_settings(redis_prefix: str) -> ApiSettings:
    return ApiSettings(key_prefix=redis_prefix, stale_after_s=30, tick_s=2, stream_coalesce_s=0.1)


@pytest.fixture
def live_api(api_settings: ApiSettings) -> Iterator[LiveServer]:
    server = serve(api_settings)
    yield server
    server.stop()


TOKEN = "s3cret-token"
"""The bearer token of `token_api`."""


@pytest.fixture
def token_api(api_settings: ApiSettings, tmp_path: Path) -> Iterator[LiveServer]:
    """The API with a bearer token (`TOKEN`, from a file)."""
    secret = tmp_path / "token"
    secret.write_text(TOKEN + "\n")
    server = serve(api_settings.model_copy(update={"token_file": secret}))
    yield server
    server.stop()


@pytest.fixture
def sink(redis_prefix: str) -> Iterator[RedisHealthSink]:
    client = redis.Redis(host="127.0.0.1", port=6379)
    yield RedisHealthSink(client, Keys(redis_prefix))
    client.close()


def configure(sink: RedisHealthSink, cameras: dict[str, str], now: datetime) -> None:
    """Register cameras (id → source state) as a producer's Redis sink does, each with a
    health record (a disconnected one has reconnected 3 times)."""
    sink.register(
        [
            ConfiguredCamera(
                camera_id=c, labels={"site": "north"}, configured_fps=2, producer="p-0"
            )
            for c in cameras
        ],
        now,
    )
    sink.publish(
        [
            health_record(
                CameraConfig(id=c, source="rtsp://camera/stream", fps=2),
                SourceHealth(
                    state,  # type: ignore[arg-type]
                    now,
                    last_frame_at=now if state == "connected" else None,
                    reconnects=3 if state == "disconnected" else 0,
                ),
                1.9 if state == "connected" else 0.0,
                0,
                "p-0",
                now,
                30,
            )
            for c, state in cameras.items()
        ]
    )
