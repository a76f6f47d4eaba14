"""Async reads of the aggregator's Redis model (key names from schemas.redis_state).

Reads are pipelined: one round trip per view, or per chunk of cameras. The API only reads;
the aggregator owns all writes. A camera's bucket replies are kept by key (`CameraRaw`),
so a view at a later time can be assembled from them without reading again (see
workers/api/overview.py).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import ValidationError
from redis.asyncio import Redis

from schemas.alert import AlertEvent
from schemas.camera_health import (
    CONFIGURED_TTL_S,
    SUPPORTED_HEALTH_VERSIONS,
    CameraHealth,
    ConfiguredCamera,
)
from schemas.redis_state import (
    COUNTERS,
    EMPTY,
    WINDOWS,
    Counters,
    FrameSummary,
    Keys,
    Span,
    counters_of,
    span_starts,
)
from workers.api.history import CameraHistory, camera_history
from workers.api.models import (
    HISTORY_READS,
    CameraReplies,
    CameraStatus,
    Stats,
    Totals,
    camera_status,
    unseen_summary,
    window_stats,
)

CHUNK_CAMERAS = 10
"""Cameras per pipeline: bounds one reply's size and how long the event loop is busy."""
CHUNK_KEYS = 500
"""Keys per MGET of health and configured records."""


@dataclass(frozen=True)
class CameraRaw:
    """One camera's replies as read at some time: bucket hashes by key name."""

    camera: str
    last_ms: float
    latest: FrameSummary | None
    alert_fields: dict[str, str]
    labels: dict[str, str]
    buckets: dict[str, Counters]


def bucket_keys(keys: Keys, camera: str | None, now: float) -> list[list[str]]:
    """The bucket keys a view at `now` needs: [last hour's minutes, 1 min's 10 s, 24 h]."""
    return [
        keys.history(camera, now, HISTORY_READS),
        keys.window(camera, WINDOWS["1m"], now),
        keys.window(camera, WINDOWS["24h"], now),
    ]


def replies_at(raw: CameraRaw, keys: Keys, now: float) -> CameraReplies:
    """The replies a read at `now` would have given, from buckets read earlier.

    Valid while the camera has had no write since `raw` was read: buckets not read then
    were empty (a newer bucket only exists once a frame is written to it).
    """
    history, short, day = (
        [raw.buckets.get(key, EMPTY) for key in group]
        for group in bucket_keys(keys, raw.camera, now)
    )
    return CameraReplies(
        raw.camera,
        raw.last_ms,
        raw.latest,
        raw.alert_fields,
        raw.labels,
        history,
        short,
        day,
    )


READ_LUA = """
-- One camera's view in one call (a reply parsed in C instead of ~93 replies in Python).
-- KEYS: 1 latest, 2 alert state, 3 labels, 4.. bucket keys; ARGV: the counter names.
-- Returns {latest json or nil, alert hash flat, labels hash flat,
--          {index, counters..., index, counters...} for the buckets that exist}.
local buckets = {}
for i = 4, #KEYS do
  local values = redis.call('HMGET', KEYS[i], unpack(ARGV))
  if values[1] then
    buckets[#buckets + 1] = i - 3
    for j = 1, #ARGV do buckets[#buckets + 1] = tonumber(values[j] or '0') end
  end
end
return {redis.call('HGET', KEYS[1], 'json'), redis.call('HGETALL', KEYS[2]),
  redis.call('HGETALL', KEYS[3]), buckets}
"""


def _pairs(flat: list[str]) -> dict[str, str]:
    return dict(zip(flat[::2], flat[1::2], strict=True))


def _raw_of(camera: str, last_ms: float, keys: list[str], reply: list[Any]) -> CameraRaw:
    latest, alert, labels, flat = reply
    width = 1 + len(COUNTERS)
    buckets = {
        keys[int(flat[i]) - 1]: Counters(*map(int, flat[i + 1 : i + width]))
        for i in range(0, len(flat), width)
    }
    return CameraRaw(
        camera,
        last_ms,
        FrameSummary.model_validate_json(latest) if latest else None,
        _pairs(alert),
        _pairs(labels),
        buckets,
    )


R = TypeVar("R", CameraHealth, ConfiguredCamera)


def parse_record(model: type[R], text: str | None) -> R | None:
    """A health or configured record, or None: absent, unreadable, or of a version this API
    does not support (never guessed at; the camera then reads as not reporting)."""
    if text is None:
        return None
    try:
        value = model.model_validate_json(text)
    except ValidationError:
        return None
    return value if value.schema_version in SUPPORTED_HEALTH_VERSIONS else None


class Store:
    """The API's view of Redis."""

    def __init__(self, redis: Redis, keys: Keys, stale_after_s: float, target: float = 0.8) -> None:
        self.target = target
        self.redis = redis
        self.keys = keys
        self.stale_after_s = stale_after_s
        self._read = redis.register_script(READ_LUA)

    async def ping(self) -> bool:
        return bool(await self.redis.ping())

    async def registry(self) -> list[tuple[str, float]]:
        """(camera id, last-seen epoch ms), sorted by camera id."""
        seen: list[tuple[str, float]] = await self.redis.zrange(  # type: ignore[assignment]
            self.keys.registry, 0, -1, withscores=True
        )
        return sorted((str(camera), float(ms)) for camera, ms in seen)

    async def raw(self, cameras: list[tuple[str, float]], now: float) -> list[CameraRaw]:
        """Every reply a view of each (camera, last-seen ms) at `now` needs: one script
        call per camera, `CHUNK_CAMERAS` per round trip."""
        out: list[CameraRaw] = []
        for first in range(0, len(cameras), CHUNK_CAMERAS):
            chunk = cameras[first : first + CHUNK_CAMERAS]
            pipe = self.redis.pipeline(transaction=False)
            plans = []
            for camera, _ in chunk:
                keys = [key for group in bucket_keys(self.keys, camera, now) for key in group]
                plans.append(keys)
                k = self.keys
                await self._read(
                    keys=[k.latest(camera), k.alert_state(camera), k.labels(camera), *keys],
                    args=list(COUNTERS),
                    client=pipe,
                )
            replies: list[Any] = await pipe.execute()
            for (camera, last_ms), keys, reply in zip(chunk, plans, replies, strict=True):
                out.append(_raw_of(camera, last_ms, keys, reply))
        return out

    async def _mget(self, keys: list[str]) -> list[str | None]:
        out: list[str | None] = []
        for first in range(0, len(keys), CHUNK_KEYS):
            texts = await self.redis.mget(keys[first : first + CHUNK_KEYS])
            out.extend(None if t is None else str(t) for t in texts)
        return out

    async def configured(self, now: float) -> dict[str, ConfiguredCamera]:
        """The cameras producers registered within CONFIGURED_TTL_S, by id."""
        cutoff_ms = int((now - CONFIGURED_TTL_S) * 1000)
        found_ids = await self.redis.zrangebyscore(self.keys.configured, cutoff_ms, "+inf")
        ids = sorted(str(c) for c in found_ids)
        texts = await self._mget([self.keys.configured_camera(c) for c in ids])
        found = {c: parse_record(ConfiguredCamera, t) for c, t in zip(ids, texts, strict=True)}
        return {c: info for c, info in found.items() if info is not None}

    async def health(self, cameras: list[str]) -> dict[str, CameraHealth]:
        """The live health records of some cameras (expired or unreadable ones are absent)."""
        texts = await self._mget([self.keys.health(c) for c in cameras])
        found = {c: parse_record(CameraHealth, t) for c, t in zip(cameras, texts, strict=True)}
        return {c: h for c, h in found.items() if h is not None}

    async def camera(self, camera: str, now: float | None = None) -> CameraStatus | None:
        """One camera in full, read now (one round trip after its registry score); a
        configured camera never seen has empty windows; unknown → None."""
        now = time.time() if now is None else now
        last_ms = await self.redis.zscore(self.keys.registry, camera)
        configured = await self.configured(now)
        health = (await self.health([camera])).get(camera)
        if last_ms is None:
            info = configured.get(camera)
            if info is None:
                return None
            unseen = unseen_summary(camera, dict(info.labels), health)
            return CameraStatus(**unseen.model_dump(), history=[])
        (raw,) = await self.raw([(camera, float(last_ms))], now)
        replies = replies_at(raw, self.keys, now)
        return camera_status(replies, now, self.stale_after_s, camera in configured, health)

    async def history(self, camera: str, span: Span, now: float | None = None) -> CameraHistory:
        """A camera's counts per bucket over `span` (one pipelined HMGET per bucket)."""
        now = time.time() if now is None else now
        starts = span_starts(now, span)
        pipe = self.redis.pipeline(transaction=False)
        for start in starts:
            pipe.hmget(self.keys.bucket(camera, span.resolution, start), list(COUNTERS))
        replies: list[list[str | None]] = await pipe.execute()
        counters = [Counters(*(int(v or 0) for v in reply)) for reply in replies]
        return camera_history(camera, span, starts, counters, now)

    async def totals(self, now: float | None = None) -> Totals:
        """The windows and lifetime counters across all cameras."""
        now = time.time() if now is None else now
        groups = bucket_keys(self.keys, None, now)
        pipe = self.redis.pipeline(transaction=False)
        for key in (k for group in groups for k in group):
            pipe.hgetall(key)
        pipe.hgetall(self.keys.totals)
        r = await pipe.execute()
        n_hist, n_short = len(groups[0]), len(groups[1])
        return Totals(
            at=datetime.fromtimestamp(now, UTC),
            windows=window_stats(
                *(
                    list(map(counters_of, part))
                    for part in (r[:n_hist], r[n_hist : n_hist + n_short], r[n_hist + n_short : -1])
                )
            ),
            lifetime=Stats.of(counters_of(r[-1])),
        )

    async def alerts(self, limit: int) -> list[AlertEvent]:
        """The most recent alert events, newest first."""
        raw = await self.redis.lrange(self.keys.alerts, 0, limit - 1)
        return [AlertEvent.model_validate_json(item) for item in raw]
