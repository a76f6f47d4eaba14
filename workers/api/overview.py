"""The fleet view, maintained: every camera's summary kept in memory and current, so
GET /api/v1/cameras and the event stream never re-read the whole fleet per request.

Why: one camera's view reads ~93 keys; recomputed per request and per viewer that was
~46,000 reads for 500 cameras every few seconds. Instead one task per API process:
- loads every camera (pipelined, in chunks) after subscribing to the updates channel, and
  again every `resync_s`: pub/sub is at most once, so a lost message costs at most that
  much staleness, and cameras the aggregator pruned disappear;
- re-reads a camera (and the fleet totals) `coalesce_s` after the channel names it (a
  result batch or an alert);
- every `tick_s` re-assembles every summary at the new time from the buckets it already
  holds (windows roll without reads, see store.replies_at), reads the fleet totals, the
  configured cameras and every camera's health record (one MGET per 500 cameras: producers
  rewrite them every few seconds without announcing them), and announces the summaries that
  changed.
The fleet is every camera with results (the aggregator's registry) and every camera a
producer registered as configured: one never seen is listed with empty windows.
Event streams subscribe to the announcements: changed summaries, removed ids, alerts and
totals. Each summary carries the server time it last changed, so a client that painted
from GET /cameras can ask the stream for what changed since.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from redis.exceptions import RedisError

from runtime.logs import get_logger
from schemas.camera_health import CameraHealth, ConfiguredCamera
from workers.api.models import CameraSummary, Totals, camera_state, camera_summary, unseen_summary
from workers.api.store import CameraRaw, Store, replies_at

log = get_logger("api.overview")
TICK_CHUNK = 50
"""Summaries re-assembled between two turns of the event loop (bounds a request's wait)."""
ChangeKind = Literal["cameras", "removed", "alert", "totals"]


AGED = frozenset({"silent_for_s", "stale", "state"})
"""The summary fields that move with the clock alone (recomputed per request)."""


def aged_fields(summary: CameraSummary, now: float, stale_after_s: float) -> dict[str, Any]:
    """The summary's silence, staleness and state at `now`."""
    if summary.last_seen is None:
        return {"silent_for_s": None, "stale": False, "state": summary.state}
    silent = round(max(0.0, now - summary.last_seen.timestamp()), 3)
    stale = silent > stale_after_s
    return {
        "silent_for_s": silent,
        "stale": stale,
        "state": camera_state(True, stale, summary.health),
    }


@dataclass
class Entry:
    summary: CameraSummary
    changed_ms: int
    _json: str | None = None

    def hold(self, summary: CameraSummary) -> None:
        """Hold `summary` and its JSON without the clock's fields (serialised here, in the
        overview's task, so requests only join)."""
        self.summary = summary
        self._json = summary.model_dump_json(exclude=set(AGED))[:-1]

    def json_at(self, now: float, stale_after_s: float) -> str:
        """The summary as JSON aged to `now`, as `aged(...).model_dump_json()` gives it but
        cheap: serialised once per change, the clock's fields appended (members of a JSON
        object have no order). A 500-camera page is then a join."""
        if self._json is None:
            self.hold(self.summary)
        tail = json.dumps(aged_fields(self.summary, now, stale_after_s), separators=(",", ":"))
        return f"{self._json},{tail[1:]}"


FPS_CHANGE = 0.1
"""A measured frame rate that moved less than this share (or 0.2 fps) is not news."""


def same_health(a: CameraHealth | None, b: CameraHealth | None) -> bool:
    """Equal for a viewer: timestamps that move with every report and small swings of the
    measured frame rate are not changes (they would announce every camera every tick)."""
    if a is None or b is None:
        return a is b
    fields = ("state", "producer", "reconnects", "dropped", "last_error", "configured_fps")
    if any(getattr(a, f) != getattr(b, f) for f in fields):
        return False
    return abs(a.actual_fps - b.actual_fps) <= max(0.2, FPS_CHANGE * b.actual_fps)


def _same(a: CameraSummary, b: CameraSummary) -> bool:
    """Equal apart from what moves with the clock alone (the client ages tiles itself)."""
    fields = ("labels", "last_seen", "latest", "windows", "alerts", "spark", "state", "configured")
    return all(getattr(a, f) == getattr(b, f) for f in fields) and same_health(a.health, b.health)


def aged(summary: CameraSummary, now: float, stale_after_s: float) -> CameraSummary:
    """The summary with its silence, staleness and state at `now`."""
    return summary.model_copy(update=aged_fields(summary, now, stale_after_s))


@dataclass(eq=False)  # identity: each stream its own
class Subscription:
    """One stream's queue of announcements; a stream that falls behind is closed (it
    reconnects and repaints) rather than buffering without bound."""

    queue: asyncio.Queue[tuple[ChangeKind, Any]] = field(default_factory=lambda: asyncio.Queue(256))
    overflowed: bool = False

    def put(self, kind: ChangeKind, payload: Any) -> None:
        if self.queue.full():
            self.overflowed = True
        else:
            self.queue.put_nowait((kind, payload))


def matches(summary: CameraSummary, labels: dict[str, str]) -> bool:
    """Whether a camera has every `name=value` label asked for."""
    return all(summary.labels.get(name) == value for name, value in labels.items())


class LiveOverview:
    """See the module doc."""

    def __init__(
        self,
        store: Store,
        coalesce_s: float = 0.5,
        tick_s: float = 10.0,
        resync_s: float = 60.0,
        retry_s: float = 2.0,
    ) -> None:
        self.store = store
        self.coalesce_s, self.tick_s, self.resync_s, self.retry_s = (
            coalesce_s,
            tick_s,
            resync_s,
            retry_s,
        )
        self.entries: dict[str, Entry] = {}
        self.raws: dict[str, CameraRaw] = {}
        self.configured: dict[str, ConfiguredCamera] = {}
        self.health: dict[str, CameraHealth] = {}
        self.totals: Totals | None = None
        self.ready = asyncio.Event()
        self._subs: set[Subscription] = set()
        self._dirty: set[str] = set()

    # --- what requests read -------------------------------------------------------------

    def page(
        self, labels: dict[str, str], offset: int, limit: int, now: float | None = None
    ) -> tuple[int, list[CameraSummary]]:
        """(matching count, one page of matching cameras in id order, aged to `now`)."""
        now = time.time() if now is None else now
        ids = sorted(c for c, e in self.entries.items() if matches(e.summary, labels))
        stale = self.store.stale_after_s
        page = [aged(self.entries[c].summary, now, stale) for c in ids[offset : offset + limit]]
        return len(ids), page

    def page_json(
        self, labels: dict[str, str], offset: int, limit: int, now: float | None = None
    ) -> tuple[int, list[str]]:
        """`page`, each camera as its JSON (what GET /api/v1/cameras sends)."""
        now = time.time() if now is None else now
        ids = sorted(c for c, e in self.entries.items() if matches(e.summary, labels))
        stale = self.store.stale_after_s
        return len(ids), [self.entries[c].json_at(now, stale) for c in ids[offset : offset + limit]]

    def changed_since(self, since_ms: int) -> list[CameraSummary]:
        """Cameras whose summary changed at or after `since_ms` (server epoch ms)."""
        now = time.time()
        return [
            aged(e.summary, now, self.store.stale_after_s)
            for _, e in sorted(self.entries.items())
            if e.changed_ms >= since_ms
        ]

    def subscribe(self) -> Subscription:
        sub = Subscription()
        self._subs.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subs.discard(sub)

    def _announce(self, kind: ChangeKind, payload: Any) -> None:
        for sub in list(self._subs):
            sub.put(kind, payload)

    # --- keeping it current -------------------------------------------------------------

    async def run(self) -> None:
        """Follow Redis until cancelled; on a Redis error, start over after `retry_s`."""
        while True:
            try:
                await self._follow()
            except (RedisError, OSError) as error:
                log.warning("overview_redis_error", error=str(error), retry_s=self.retry_s)
                await asyncio.sleep(self.retry_s)

    async def _follow(self) -> None:
        pubsub = self.store.redis.pubsub()
        try:
            await pubsub.subscribe(self.store.keys.updates)
            await self.resync()  # after subscribing, so no change can fall in between
            loop = asyncio.get_running_loop()
            next_tick = loop.time() + self.tick_s
            next_resync = loop.time() + self.resync_s
            flush_at = math.inf
            while True:
                wait = min(next_tick, next_resync, flush_at) - loop.time()
                message = await pubsub.get_message(
                    ignore_subscribe_messages=True, timeout=max(0.0, min(wait, 1.0))
                )
                if message is not None:
                    self._note(message["data"])
                    if self._dirty and flush_at == math.inf:
                        flush_at = loop.time() + self.coalesce_s
                now = loop.time()
                if now >= flush_at:
                    await self.reread(sorted(self._dirty))
                    self._dirty.clear()
                    flush_at = math.inf
                if now >= next_tick:
                    await self.tick()
                    next_tick = now + self.tick_s
                if now >= next_resync:
                    await self.resync()
                    next_resync = now + self.resync_s
        finally:
            await pubsub.aclose()  # type: ignore[no-untyped-call]

    def _note(self, data: str) -> None:
        update = json.loads(data)
        if "alert" in update:
            self._announce("alert", json.dumps(update["alert"]))
            self._dirty.add(str(update["alert"].get("camera_id", "")))
        self._dirty.update(str(c) for c in update.get("cameras", ()))
        self._dirty.discard("")

    def _summarise(self, camera: str, now: float) -> CameraSummary:
        """A camera's summary at `now` from what is held: its replies (if it ever sent), its
        configuration and its producer's health record."""
        raw, info = self.raws.get(camera), self.configured.get(camera)
        health = self.health.get(camera)
        if raw is None:
            labels = dict(info.labels) if info is not None else {}
            return unseen_summary(camera, labels, health)
        replies = replies_at(raw, self.store.keys, now)
        if not replies.labels and info is not None and info.labels:
            replies = dataclasses.replace(replies, labels=dict(info.labels))
        return camera_summary(replies, now, 0.0, info is not None, health)

    def _put(self, camera: str, now: float) -> CameraSummary | None:
        """Re-assemble a camera's summary; the summary if it changed (None if not)."""
        summary = self._summarise(camera, now)
        old = self.entries.get(camera)
        if old is not None and _same(old.summary, summary):
            if old.summary != summary:  # health timestamps moved: keep them current, unannounced
                old.hold(summary)
            return None
        entry = Entry(summary, int(now * 1000))
        entry.hold(summary)
        self.entries[camera] = entry
        return summary

    def _forget(self, known: set[str]) -> None:
        """Drop cameras neither registered nor configured any more, and say so."""
        gone = sorted(set(self.entries) - known)
        for camera in gone:
            del self.entries[camera]
            self.raws.pop(camera, None)
        if gone:
            self._announce("removed", gone)

    async def _read_health(self, now: float) -> None:
        self.configured = await self.store.configured(now)
        self.health = await self.store.health(sorted(set(self.raws) | set(self.configured)))

    def _publish(self, changed: list[CameraSummary | None], now: float) -> None:
        fresh = [aged(s, now, self.store.stale_after_s) for s in changed if s is not None]
        if fresh:
            self._announce("cameras", fresh)

    async def reread(self, cameras: list[str]) -> None:
        """Read some cameras again (the updates channel named them)."""
        if not cameras:
            return
        now = time.time()
        scores = await self.store.redis.zmscore(self.store.keys.registry, cameras)
        known = [(c, float(s)) for c, s in zip(cameras, scores, strict=True) if s is not None]
        for raw in await self.store.raw(known, now):
            self.raws[raw.camera] = raw
        self.health.update(await self.store.health([c for c, _ in known]))
        self._publish([self._put(camera, now) for camera, _ in known], now)
        await self._read_totals(now)

    async def resync(self) -> None:
        """Read every camera and the totals again; forget cameras no longer registered."""
        now = time.time()
        registry = await self.store.registry()
        self.raws = {raw.camera: raw for raw in await self.store.raw(registry, now)}
        await self._read_health(now)
        cameras = set(self.raws) | set(self.configured)
        self._publish([self._put(camera, now) for camera in sorted(cameras)], now)
        self._forget(cameras)
        await self._read_totals(now)
        self.ready.set()

    async def tick(self) -> None:
        """Roll every camera's windows to now from the buckets held; read the totals."""
        now = time.time()
        await self._read_health(now)
        cameras = sorted(set(self.raws) | set(self.configured))
        for first in range(0, len(cameras), TICK_CHUNK):
            chunk = cameras[first : first + TICK_CHUNK]
            self._publish([self._put(camera, now) for camera in chunk], now)
            await asyncio.sleep(0)  # let requests in between chunks
        self._forget(set(cameras))
        await self._read_totals(now)

    async def _read_totals(self, now: float) -> None:
        self.totals = await self.store.totals(now)
        self._announce("totals", self.totals)
