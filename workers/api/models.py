"""The API's response bodies (they are its OpenAPI spec) and their assembly from Redis replies.

Assembly is pure: `camera_status` takes the raw replies of one camera's reads, so the
arithmetic (windows, staleness, sparkline points) is tested without a server.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.redis_state import (
    RULES,
    WINDOWS,
    Counters,
    FrameSummary,
    WindowName,
    counters_of,
    history_starts,
    rule_state,
    sum_counters,
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

    @classmethod
    def of(cls, c: Counters) -> Stats:
        return cls(
            frames=c.frames,
            skipped=c.skipped,
            faces=c.faces,
            with_mask=c.with_mask,
            without_mask=c.without_mask,
            compliance=c.compliance,
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


class CameraStatus(Model):
    """One camera now: latest frame, rolling windows, alert state, staleness."""

    camera_id: str
    last_seen: datetime = Field(description="Capture time of the newest frame result.")
    silent_for_s: float = Field(ge=0.0, description="Seconds since last_seen.")
    stale: bool = Field(description="No frame for longer than the API's stale_after_s.")
    latest: FrameSummary | None
    windows: list[WindowStats]
    alerts: list[RuleStatus]
    firing: bool = Field(description="Any rule firing.")
    history: list[HistoryPoint] = Field(description="The last hour, per minute, oldest first.")


class Overview(Model):
    """Every camera and the totals across cameras."""

    at: datetime = Field(description="Server time of this view.")
    stale_after_s: float
    target: float = Field(ge=0.0, le=1.0, description="Compliance target (dashboard line).")
    cameras: list[CameraStatus]
    windows: list[WindowStats] = Field(description="Windows across all cameras.")
    lifetime: Stats = Field(description="Everything applied since Redis was empty.")


def _at(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


def window_stats(
    history: list[dict[str, str]], short: list[dict[str, str]], day: list[dict[str, str]]
) -> list[WindowStats]:
    """1m from the 10 s buckets, 15m from the last 15 minute buckets, 24h from hour buckets."""
    tail = WINDOWS["15m"].buckets
    spans: dict[WindowName, Counters] = {
        "1m": sum_counters(short),
        "15m": sum_counters(history[-tail:]),
        "24h": sum_counters(day),
    }
    return [
        WindowStats(window=name, seconds=WINDOWS[name].seconds, **Stats.of(c).model_dump())
        for name, c in spans.items()
    ]


def camera_status(
    camera: str,
    last_ms: float,
    latest_json: str | None,
    alert_fields: dict[str, str],
    history: list[dict[str, str]],
    short: list[dict[str, str]],
    day: list[dict[str, str]],
    now: float,
    stale_after_s: float,
) -> CameraStatus:
    """Assemble one camera's status from its raw Redis replies."""
    silent = max(0.0, now - last_ms / 1000)
    rules = []
    for rule in RULES:
        state = rule_state(alert_fields, rule)
        rules.append(
            RuleStatus(
                rule=rule,
                state=state.state,  # type: ignore[arg-type]
                since=_at(state.since) if state.since else None,
            )
        )
    starts = history_starts(now, len(history))
    points = [
        HistoryPoint(start=_at(start), **Stats.of(counters_of(fields)).model_dump())
        for start, fields in zip(starts, history, strict=True)
    ]
    return CameraStatus(
        camera_id=camera,
        last_seen=_at(last_ms / 1000),
        silent_for_s=round(silent, 3),
        stale=silent > stale_after_s,
        latest=FrameSummary.model_validate_json(latest_json) if latest_json else None,
        windows=window_stats(history, short, day),
        alerts=rules,
        firing=any(r.state == "firing" for r in rules),
        history=points,
    )
