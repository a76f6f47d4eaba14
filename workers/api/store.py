"""Async reads of the aggregator's Redis model (key names from schemas.redis_state).

Each view is one pipelined round trip. The API only reads; the aggregator owns all writes.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

from redis.asyncio import Redis

from schemas.alert import AlertEvent
from schemas.redis_state import WINDOWS, Keys, counters_of
from workers.api.models import (
    HISTORY_READS,
    CameraStatus,
    Overview,
    Stats,
    camera_status,
    window_stats,
)

READS_PER_CAMERA = 2 + HISTORY_READS + WINDOWS["1m"].buckets + WINDOWS["24h"].buckets


class Store:
    """The API's view of Redis."""

    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        stale_after_s: float,
        target: float = 0.8,
        snapshot_max_age_s: float = 1.0,
    ) -> None:
        self.target = target
        self.redis = redis
        self.keys = keys
        self.stale_after_s = stale_after_s
        self.snapshot_max_age_s = snapshot_max_age_s
        self._snapshot: tuple[float, str] | None = None
        self._snapshot_lock = asyncio.Lock()

    async def snapshot_json(self) -> str:
        """The overview as JSON, shared by all event streams for `snapshot_max_age_s`, so
        the cost of snapshots does not grow with the number of open dashboards."""
        async with self._snapshot_lock:
            now = time.monotonic()
            if self._snapshot is None or now - self._snapshot[0] > self.snapshot_max_age_s:
                self._snapshot = (now, (await self.overview()).model_dump_json())
            return self._snapshot[1]

    async def ping(self) -> bool:
        return bool(await self.redis.ping())

    async def registry(self) -> list[tuple[str, float]]:
        """(camera id, last-seen epoch ms), sorted by camera id."""
        seen: list[tuple[str, float]] = await self.redis.zrange(  # type: ignore[assignment]
            self.keys.registry, 0, -1, withscores=True
        )
        return sorted((str(camera), float(ms)) for camera, ms in seen)

    async def statuses(
        self, cameras: list[tuple[str, float]], now: float | None = None
    ) -> list[CameraStatus]:
        """Status of each (camera, last-seen ms) given, in one round trip."""
        now = time.time() if now is None else now
        pipe = self.redis.pipeline(transaction=False)
        for camera, _ in cameras:
            self._queue_camera(pipe, camera, now)
        replies = await pipe.execute() if cameras else []
        out = []
        for i, (camera, last_ms) in enumerate(cameras):
            r = replies[i * READS_PER_CAMERA : (i + 1) * READS_PER_CAMERA]
            history = r[2 : 2 + HISTORY_READS]
            short = r[2 + HISTORY_READS : 2 + HISTORY_READS + WINDOWS["1m"].buckets]
            day = r[2 + HISTORY_READS + WINDOWS["1m"].buckets :]
            out.append(
                camera_status(
                    camera, last_ms, r[0], r[1], history, short, day, now, self.stale_after_s
                )
            )
        return out

    def _queue_camera(self, pipe: Any, camera: str | None, now: float) -> None:
        k = self.keys
        if camera is not None:
            pipe.hget(k.latest(camera), "json")
            pipe.hgetall(k.alert_state(camera))
        for key in [
            *k.history(camera, now, HISTORY_READS),
            *k.window(camera, WINDOWS["1m"], now),
            *k.window(camera, WINDOWS["24h"], now),
        ]:
            pipe.hgetall(key)

    async def camera(self, camera: str, now: float | None = None) -> CameraStatus | None:
        last_ms = await self.redis.zscore(self.keys.registry, camera)
        if last_ms is None:
            return None
        return (await self.statuses([(camera, float(last_ms))], now))[0]

    async def overview(self, now: float | None = None) -> Overview:
        """All cameras plus the windows and lifetime totals across cameras."""
        now = time.time() if now is None else now
        cameras = await self.statuses(await self.registry(), now)
        pipe = self.redis.pipeline(transaction=False)
        self._queue_camera(pipe, None, now)
        pipe.hgetall(self.keys.totals)
        r = await pipe.execute()
        short_end = HISTORY_READS + WINDOWS["1m"].buckets
        windows = window_stats(r[:HISTORY_READS], r[HISTORY_READS:short_end], r[short_end:-1])
        return Overview(
            at=datetime.fromtimestamp(now, UTC),
            stale_after_s=self.stale_after_s,
            target=self.target,
            cameras=cameras,
            windows=windows,
            lifetime=Stats.of(counters_of(r[-1])),
        )

    async def alerts(self, limit: int) -> list[AlertEvent]:
        """The most recent alert events, newest first."""
        raw = await self.redis.lrange(self.keys.alerts, 0, limit - 1)
        return [AlertEvent.model_validate_json(item) for item in raw]
