"""The Redis data model, as pure functions: key names, time buckets, windows, compliance.

Every key the aggregator writes and the API reads is named here, so the two sides cannot
drift. Counts are kept per camera (and for all cameras together) in time buckets keyed by
the frame's capture time. Each bucket key expires, at an absolute time, as soon as no window
can contain it any more, so memory per camera is bounded no matter how long it runs. A
rolling window is the sum of the buckets whose start falls in its last `n` slots.

Resolutions and what they serve:
- `s10`: 10 s buckets, kept 1 min → the 1-minute window;
- `m1`: 1 min buckets, kept 1 h → the 15-minute window and the last-hour sparkline;
- `h1`: 1 h buckets, kept 7 d → the 24-hour window and the 24 h / 7 d history charts;
- `d1`: 1 day buckets (UTC days), kept 31 d → the 30-day history at daily resolution.

Memory bound: per camera (and once for all cameras together) at most 7 + 61 + 169 + 32 = 269
bucket hashes of at most five small integer fields each, whatever the camera's frame rate
and however long it runs (about 40 kB per camera in Redis 7's listpack encoding).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.result import FrameResult

WindowName = Literal["1m", "15m", "24h"]
COUNTERS = ("frames", "skipped", "faces", "with_mask", "without_mask")
RULES = ("low_compliance", "camera_silent")
State = Literal["ok", "firing"]
"""A rule's state in a camera's alert hash."""


@dataclass(frozen=True)
class Resolution:
    """A bucket size and how long buckets of that size must live."""

    name: str
    seconds: int
    retention_s: int


@dataclass(frozen=True)
class Window:
    """A rolling window: the last `retention / seconds` buckets of one resolution."""

    name: WindowName
    seconds: int
    resolution: Resolution

    @property
    def buckets(self) -> int:
        return self.seconds // self.resolution.seconds


S10 = Resolution("s10", 10, 60)
M1 = Resolution("m1", 60, 3600)
H1 = Resolution("h1", 3600, 7 * 86400)
D1 = Resolution("d1", 86400, 31 * 86400)
RESOLUTIONS = (S10, M1, H1, D1)
WINDOWS: dict[WindowName, Window] = {
    "1m": Window("1m", 60, S10),
    "15m": Window("15m", 900, M1),
    "24h": Window("24h", 86400, H1),
}
HISTORY_MINUTES = 60
HistoryRange = Literal["1h", "24h", "7d", "30d"]


@dataclass(frozen=True)
class Span:
    """A history chart's span: how many buckets of which resolution."""

    name: HistoryRange
    resolution: Resolution
    buckets: int


SPANS: dict[HistoryRange, Span] = {
    "1h": Span("1h", M1, 60),
    "24h": Span("24h", H1, 24),
    "7d": Span("7d", H1, 168),
    "30d": Span("30d", D1, 30),
}


def span_starts(now: float, span: Span) -> list[int]:
    """Bucket starts of `span` ending with the bucket that holds `now`, oldest first."""
    res = span.resolution
    current = bucket_start(now, res)
    return [current - i * res.seconds for i in range(span.buckets - 1, -1, -1)]


def bucket_start(t: float, res: Resolution) -> int:
    """Start (epoch seconds) of the bucket of `res` that holds time `t`."""
    return math.floor(t / res.seconds) * res.seconds


def bucket_expire_at(start: int, res: Resolution) -> int:
    """When a bucket can no longer be in any window of its resolution (plus one slot of grace
    for clock skew between the aggregator and the API)."""
    return start + res.seconds + res.retention_s


def window_starts(now: float, window: Window) -> list[int]:
    """Bucket starts that make up `window` at time `now`, oldest first (current one last)."""
    res = window.resolution
    current = bucket_start(now, res)
    return [current - i * res.seconds for i in range(window.buckets - 1, -1, -1)]


def history_starts(now: float, minutes: int = HISTORY_MINUTES) -> list[int]:
    """Minute bucket starts of the last `minutes` minutes, oldest first."""
    current = bucket_start(now, M1)
    return [current - i * M1.seconds for i in range(minutes - 1, -1, -1)]


def live_buckets(event_t: float, now: float) -> list[tuple[Resolution, int, int]]:
    """(resolution, bucket start, expire-at) for each resolution an event still counts in.

    An event is bucketed at min(capture time, now) so a camera with a fast clock cannot
    create buckets that live too long; a bucket whose expiry has passed is left out (writing
    it would count nothing a window can see and EXPIREAT in the past would delete the key).
    """
    t = min(event_t, now)
    plan = []
    for res in RESOLUTIONS:
        start = bucket_start(t, res)
        expire_at = bucket_expire_at(start, res)
        if expire_at > now:
            plan.append((res, start, expire_at))
    return plan


def compliance(with_mask: int, faces: int) -> float | None:
    """Share of faces wearing a mask; None when there were no faces (not 0 %, not 100 %)."""
    return with_mask / faces if faces > 0 else None


@dataclass(frozen=True)
class Keys:
    """Key names under one prefix (the prefix isolates deployments and tests)."""

    prefix: str = "mw:"

    @property
    def registry(self) -> str:
        """Sorted set: camera id → last seen (epoch ms of the newest capture time)."""
        return f"{self.prefix}cameras"

    @property
    def totals(self) -> str:
        """Hash of lifetime counters across all cameras."""
        return f"{self.prefix}totals"

    @property
    def alerts(self) -> str:
        """List of the most recent alert events (JSON), newest first, capped."""
        return f"{self.prefix}alerts"

    @property
    def alert_outbox(self) -> str:
        """Hash: alert events recorded but not yet acknowledged by Kafka (id → JSON); the
        aggregator re-announces what stays here (see workers/aggregator/apply.py)."""
        return f"{self.prefix}alerts:outbox"

    @property
    def updates(self) -> str:
        """Pub/sub channel: which cameras changed, and alert events."""
        return f"{self.prefix}updates"

    def latest(self, camera: str) -> str:
        """Hash: `ms` (capture time of the newest result) and `json` (its summary)."""
        return f"{self.prefix}cam:{camera}:latest"

    def labels(self, camera: str) -> str:
        """Hash: the camera's labels (name → value, e.g. site, zone) from its newest result."""
        return f"{self.prefix}cam:{camera}:labels"

    def camera_totals(self, camera: str) -> str:
        """Hash of the camera's lifetime counters."""
        return f"{self.prefix}cam:{camera}:totals"

    def alert_state(self, camera: str) -> str:
        """Hash: `<rule>:state|since|fired_at|value` per alert rule."""
        return f"{self.prefix}cam:{camera}:alert"

    def applied(self, camera: str) -> str:
        """String: the camera's applied high-water mark, the newest dedupe block applied."""
        return f"{self.prefix}cam:{camera}:applied"

    def seen(self, camera: str, block: int) -> str:
        """Hash of applied sequence numbers of one dedupe block (see `dedupe_slot`)."""
        return f"{self.seen_prefix(camera)}{block}"

    def seen_prefix(self, camera: str) -> str:
        """The camera's dedupe block keys without the block number (the apply script deletes
        blocks that leave the window by name)."""
        return f"{self.prefix}cam:{camera}:seen:"

    def bucket(self, camera: str | None, res: Resolution, start: int) -> str:
        """Hash of COUNTERS for one camera (or all cameras when None) in one time bucket."""
        scope = "all" if camera is None else f"cam:{camera}"
        return f"{self.prefix}{scope}:b:{res.name}:{start}"

    def window(self, camera: str | None, window: Window, now: float) -> list[str]:
        """Bucket keys of one rolling window at `now`, oldest first."""
        res = window.resolution
        return [self.bucket(camera, res, start) for start in window_starts(now, window)]

    def span(self, camera: str | None, span: Span, now: float) -> list[str]:
        """Bucket keys of a history span at `now`, oldest first."""
        return [self.bucket(camera, span.resolution, s) for s in span_starts(now, span)]

    @property
    def configured(self) -> str:
        """Sorted set: configured camera id → epoch ms its producer last registered it."""
        return f"{self.prefix}configured"

    def configured_camera(self, camera: str) -> str:
        """String with a TTL: the camera's `ConfiguredCamera` JSON (labels, fps, producer)."""
        return f"{self.prefix}cam:{camera}:configured"

    def health(self, camera: str) -> str:
        """String with a TTL: the camera's `CameraHealth` JSON, written by its producer."""
        return f"{self.prefix}cam:{camera}:health"

    def history(self, camera: str | None, now: float, minutes: int = HISTORY_MINUTES) -> list[str]:
        """Minute bucket keys of the last `minutes` minutes, oldest first."""
        return [self.bucket(camera, M1, start) for start in history_starts(now, minutes)]


SEEN_BLOCK_US = 10_000_000
"""Dedupe blocks span 10 s of capture time: up to ~12 fps fits Redis's compact listpack."""
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def epoch_us(moment: datetime) -> int:
    """Microseconds since the epoch, exact (the same result always maps to the same block)."""
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def dedupe_slot(captured_at: datetime, seq: int) -> tuple[int, int]:
    """(block, field) remembering that (camera, seq) was applied.

    Blocks follow the capture time, not the sequence number, so memory is bounded whatever
    numbering a producer uses (counters or, as ours, capture microseconds). The field is seq
    relative to the block's start: unique within the block for any numbering, and a small
    integer (compact in a listpack) when seq is the capture time in microseconds.
    """
    block = epoch_us(captured_at) // SEEN_BLOCK_US
    return block, seq - block * SEEN_BLOCK_US


@dataclass(frozen=True)
class Counters:
    """Summed COUNTERS of some buckets (a window, a minute, a lifetime)."""

    frames: int = 0
    skipped: int = 0
    faces: int = 0
    with_mask: int = 0
    without_mask: int = 0

    @property
    def compliance(self) -> float | None:
        return compliance(self.with_mask, self.faces)

    def __add__(self, other: Counters) -> Counters:
        return Counters(*(getattr(self, f) + getattr(other, f) for f in COUNTERS))


def counters_of(fields: dict[str, str]) -> Counters:
    """Counters from one bucket hash as HGETALL returns it (absent fields are zero)."""
    return Counters(*(int(fields.get(name, 0)) for name in COUNTERS))


EMPTY = Counters()


def total(counters: list[Counters]) -> Counters:
    """The sum of some Counters (plain loops: the API sums ~90 per camera per tick)."""
    frames = skipped = faces = with_mask = without_mask = 0
    for c in counters:
        frames += c.frames
        skipped += c.skipped
        faces += c.faces
        with_mask += c.with_mask
        without_mask += c.without_mask
    return Counters(frames, skipped, faces, with_mask, without_mask)


def sum_counters(hashes: list[dict[str, str]]) -> Counters:
    """The sum of several bucket hashes (missing or expired buckets are empty dicts)."""
    total = Counters()
    for fields in hashes:
        total = total + counters_of(fields)
    return total


class FrameSummary(BaseModel):
    """What `latest(camera)` holds: the newest frame's outcome without its boxes."""

    model_config = ConfigDict(frozen=True)

    seq: int = Field(ge=0)
    captured_at: datetime
    processed_at: datetime
    status: Literal["processed", "skipped"]
    skip_reason: str | None = None
    faces: int = Field(ge=0)
    with_mask: int = Field(ge=0)
    without_mask: int = Field(ge=0)
    worker_id: str
    total_ms: float = Field(ge=0.0, description="Detector time spent on the frame (ms).")

    @classmethod
    def of(cls, result: FrameResult) -> FrameSummary:
        return cls(
            seq=result.seq,
            captured_at=result.captured_at,
            processed_at=result.processed_at,
            status=result.status,
            skip_reason=result.skip_reason.value if result.skip_reason else None,
            faces=result.counts.faces,
            with_mask=result.counts.with_mask,
            without_mask=result.counts.without_mask,
            worker_id=result.worker_id,
            total_ms=result.timings_ms.total_ms,
        )


@dataclass(frozen=True)
class RuleState:
    """One camera's rule as stored in Redis."""

    state: State = "ok"
    since: float | None = None
    fired_at: float | None = None


def rule_state(fields: dict[str, str], rule: str) -> RuleState:
    """Parse one rule from a camera's alert hash (absent → ok, never fired)."""
    state = fields.get(f"{rule}:state", "ok")
    since = fields.get(f"{rule}:since")
    fired_at = fields.get(f"{rule}:fired_at")
    return RuleState(
        state="firing" if state == "firing" else "ok",
        since=float(since) if since else None,
        fired_at=float(fired_at) if fired_at else None,
    )
