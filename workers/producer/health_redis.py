"""The Redis health sink: `CameraHealth` records with a TTL, the configured-camera registry.

Key names come from `schemas.redis_state.Keys`, so the API reads what is written here
without importing the producer. One pipeline per report (one round trip for all cameras).
"""

from __future__ import annotations

from datetime import datetime

from redis import Redis

from schemas.camera_health import CONFIGURED_TTL_S, CameraHealth, ConfiguredCamera
from schemas.redis_state import Keys
from workers.producer.health import HealthSettings


class RedisHealthSink:
    """`HealthSink` over a Redis client (see the module doc)."""

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.redis, self.keys = redis, keys

    @classmethod
    def of(cls, settings: HealthSettings) -> RedisHealthSink:
        client = Redis.from_url(
            settings.redis_url,
            socket_timeout=5,
            socket_connect_timeout=5,
            **settings.redis_options(),
        )
        return cls(client, Keys(settings.key_prefix))

    def register(self, cameras: list[ConfiguredCamera], now: datetime) -> None:
        """Mark the cameras configured now; forget registrations older than CONFIGURED_TTL_S."""
        if not cameras:
            return
        now_ms = int(now.timestamp() * 1000)
        pipe = self.redis.pipeline(transaction=False)
        pipe.zadd(self.keys.configured, {c.camera_id: now_ms for c in cameras})
        for camera in cameras:
            key = self.keys.configured_camera(camera.camera_id)
            pipe.set(key, camera.model_dump_json(), ex=CONFIGURED_TTL_S)
        pipe.zremrangebyscore(self.keys.configured, "-inf", now_ms - CONFIGURED_TTL_S * 1000)
        pipe.execute()

    def publish(self, records: list[CameraHealth]) -> None:
        pipe = self.redis.pipeline(transaction=False)
        for record in records:
            pipe.set(self.keys.health(record.camera_id), record.model_dump_json(), ex=record.ttl_s)
        pipe.execute()

    def close(self) -> None:
        self.redis.close()
