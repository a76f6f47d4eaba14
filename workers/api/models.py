"""The API's response bodies (they are its OpenAPI spec) and their assembly from Redis replies.

Assembly is pure: `camera_status` takes the raw replies of one camera's reads, so the
arithmetic (windows, staleness, sparkline points) is tested without a server.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.camera_health import CameraHealth
from schemas.redis_state import (
    COUNTERS,
    RULES,
    WINDOWS,
    Counters,
    FrameSummary,
    WindowName,
    history_starts,
    rule_state,
    total,
)

HISTORY_READS = 60
"""Minute buckets read per camera: the sparkline's hour, of which the 15 m window is the tail."""


class Model(BaseModel):
    model_config = ConfigDict(frozen=True)


class Stats(Model):
    """Counts over some span and the compliance they give."""

    frames: int = Field(ge=0, description="Frame results, processed or skipped.")
    skipped: int = Field(ge=0, description="Frames the detector shed without looking (overload).")
    faces: int = Field(ge=0)
    with_mask: int = Field(ge=0)
    without_mask: int = Field(ge=0)
    compliance: float | None = Field(
        ge=0.0, le=1.0, description="with_mask / faces; null when there were no faces."
    )
    skipped_share: float | None = Field(
        None, ge=0.0, le=1.0, description="skipped / frames; null when there were no frames."
    )

    @classmethod
    def of(cls, c: Counters) -> Stats:
        return cls(
            frames=c.frames,
            skipped=c.skipped,
            faces=c.faces,
            with_mask=c.with_mask,
            without_mask=c.without_mask,
            compliance=c.compliance,
            skipped_share=c.skipped / c.frames if c.frames else None,
        )


class WindowStats(Stats):
    window: WindowName
    seconds: int = Field(ge=1)


class HistoryPoint(Stats):
    """One minute of the last hour (the dashboard's sparkline)."""

    start: datetime


class RuleStatus(Model):
    rule: Literal["low_compliance", "camera_silent"]
    state: Literal["ok", "firing"]
    since: datetime | None = Field(description="When the rule last changed state.")


CameraState = Literal["live", "stale", "disconnected", "never_seen"]


def camera_state(seen: bool, stale: bool, health: CameraHealth | None) -> CameraState:
    """What a tile says first: the producer's word on a failed source beats the results'
    silence; a camera with no result at all was never seen (configured, or reconnecting)."""
    if health is not None and health.state == "disconnected":
        return "disconnected"
    if not seen:
        return "never_seen"
    return "stale" if stale else "live"


class CameraSummary(Model):
    """One camera now, as the fleet view lists it: latest frame, rolling windows, alert
    state, staleness, its producer's health report and a compact last-hour sparkline."""

    camera_id: str
    labels: dict[str, str] = Field(
        default_factory=dict, description="The camera's labels (e.g. site, zone)."
    )
    state: CameraState = Field(
        description="live; stale (no result for stale_after_s); disconnected (its producer "
        "reports the source down); never_seen (configured, no result ever)."
    )
    configured: bool = Field(
        False, description="A producer registered it (in cameras.yaml, within the last hour)."
    )
    health: CameraHealth | None = Field(
        None, description="Its producer's latest health report (null: none reporting)."
    )
    last_seen: datetime | None = Field(
        description="Capture time of the newest frame result (null: never seen)."
    )
    silent_for_s: float | None = Field(ge=0.0, description="Seconds since last_seen.")
    stale: bool = Field(description="No frame for longer than the API's stale_after_s.")
    latest: FrameSummary | None
    windows: list[WindowStats]
    alerts: list[RuleStatus]
    firing: bool = Field(description="Any rule firing.")
    spark: list[float | None] = Field(
        description="Compliance per minute over the last hour, oldest first (null: no faces)."
    )


class CameraStatus(CameraSummary):
    """One camera in full: the summary plus the last hour's per-minute counts."""

    history: list[HistoryPoint] = Field(description="The last hour, per minute, oldest first.")


class CameraList(Model):
    """A batch of cameras (the stream's `cameras` event)."""

    cameras: list[CameraSummary]


class LabelGroup(Model):
    """The cameras with one value of a label, summed (e.g. compliance per site)."""

    value: str
    cameras: int = Field(ge=0)
    firing: int = Field(ge=0, description="Cameras with a rule firing.")
    stale: int = Field(ge=0, description="Cameras silent longer than stale_after_s.")
    windows: list[WindowStats] = Field(description="Windows summed over these cameras.")


class LabelAggregates(Model):
    """Per value of one label: how many cameras and their summed windows."""

    at: datetime
    label: str
    groups: list[LabelGroup] = Field(
        description="One per value, by value; cameras without it are left out."
    )


def label_groups(label: str, cameras: list[CameraSummary]) -> list[LabelGroup]:
    """Group cameras by the value of `label` and sum their windows (pure)."""
    by_value: dict[str, list[CameraSummary]] = {}
    for cam in cameras:
        if label in cam.labels:
            by_value.setdefault(cam.labels[label], []).append(cam)
    groups = []
    for value, members in sorted(by_value.items()):
        windows = []
        for i, first in enumerate(members[0].windows):
            summed = total(
                [Counters(*(getattr(m.windows[i], f) for f in COUNTERS)) for m in members]
            )
            windows.append(
                WindowStats(
                    window=first.window, seconds=first.seconds, **Stats.of(summed).model_dump()
                )
            )
        groups.append(
            LabelGroup(
                value=value,
                cameras=len(members),
                firing=sum(1 for m in members if m.firing),
                stale=sum(1 for m in members if m.stale),
                windows=windows,
            )
        )
    return groups


class Totals(Model):
    """The windows and lifetime counters across all cameras."""

    at: datetime = Field(description="Server time of this view.")
    windows: list[WindowStats] = Field(description="Windows across all cameras.")
    lifetime: Stats = Field(description="Everything applied since Redis was empty.")


class Overview(Totals):
    """One page of cameras (in camera id order, optionally filtered) and the fleet totals."""

    stale_after_s: float
    target: float = Field(ge=0.0, le=1.0, description="Compliance target (dashboard line).")
    total: int = Field(ge=0, description="Cameras matching the filter, on all pages.")
    offset: int = Field(ge=0)
    limit: int = Field(ge=1)
    cameras: list[CameraSummary]


def _at(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


def window_stats(
    history: list[Counters], short: list[Counters], day: list[Counters]
) -> list[WindowStats]:
    """1m from the 10 s buckets, 15m from the last 15 minute buckets, 24h from hour buckets."""
    tail = WINDOWS["15m"].buckets
    spans: dict[WindowName, Counters] = {
        "1m": total(short),
        "15m": total(history[-tail:]),
        "24h": total(day),
    }
    return [
        WindowStats(window=name, seconds=WINDOWS[name].seconds, **Stats.of(c).model_dump())
        for name, c in spans.items()
    ]


@dataclass(frozen=True)
class CameraReplies:
    """The Redis replies (decoded) one camera's view is assembled from."""

    camera: str
    last_ms: float
    latest: FrameSummary | None
    alert_fields: dict[str, str]
    labels: dict[str, str]
    history: list[Counters]
    short: list[Counters]
    day: list[Counters]


def _summary_fields(
    r: CameraReplies, now: float, stale_after_s: float, health: CameraHealth | None
) -> dict[str, Any]:
    silent = max(0.0, now - r.last_ms / 1000)
    rules = []
    for rule in RULES:
        state = rule_state(r.alert_fields, rule)
        rules.append(
            RuleStatus(
                rule=rule,
                state=state.state,  # type: ignore[arg-type]
                since=_at(state.since) if state.since else None,
            )
        )
    return {
        "camera_id": r.camera,
        "labels": r.labels,
        "last_seen": _at(r.last_ms / 1000),
        "silent_for_s": round(silent, 3),
        "stale": silent > stale_after_s,
        "state": camera_state(True, silent > stale_after_s, health),
        "health": health,
        "latest": r.latest,
        "windows": window_stats(r.history, r.short, r.day),
        "alerts": rules,
        "firing": any(x.state == "firing" for x in rules),
    }


def camera_summary(
    r: CameraReplies,
    now: float,
    stale_after_s: float,
    configured: bool = False,
    health: CameraHealth | None = None,
) -> CameraSummary:
    """One camera's list-view entry from its raw replies (no per-minute objects built)."""
    spark = [c.compliance for c in r.history]
    return CameraSummary(
        **_summary_fields(r, now, stale_after_s, health), configured=configured, spark=spark
    )


def unseen_summary(
    camera: str, labels: dict[str, str], health: CameraHealth | None
) -> CameraSummary:
    """A configured camera with no result in Redis: empty windows, no sparkline points."""
    empty = [Counters()] * HISTORY_READS
    return CameraSummary(
        camera_id=camera,
        labels=labels,
        state=camera_state(False, False, health),
        configured=True,
        health=health,
        last_seen=None,
        silent_for_s=None,
        stale=False,
        latest=None,
        windows=window_stats(empty, [], []),
        alerts=[RuleStatus(rule=rule, state="ok", since=None) for rule in RULES],  # type: ignore[arg-type]
        firing=False,
        spark=[None] * HISTORY_READS,
    )


def camera_status(
    r: CameraReplies,
    now: float,
    stale_after_s: float,
    configured: bool = False,
    health: CameraHealth | None = None,
) -> CameraStatus:
    """One camera in full (summary plus per-minute history) from its raw replies."""
    starts = history_starts(now, len(r.history))
    points = [
        HistoryPoint(start=_at(start), **Stats.of(c).model_dump())
        for start, c in zip(starts, r.history, strict=True)
    ]
    return CameraStatus(
        **_summary_fields(r, now, stale_after_s, health),
        configured=configured,
        spark=[p.compliance for p in points],
        history=points,
    )
