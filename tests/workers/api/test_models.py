"""Assembling a camera's status from raw Redis replies (pure)."""

from __future__ import annotations

from schemas.redis_state import Counters
from workers.api.models import CameraReplies, camera_status, camera_summary

NOW = 1_800_000_030.0  # 30 s into a minute


def bucket(faces: int, masked: int) -> Counters:
    return Counters(frames=1, faces=faces, with_mask=masked, without_mask=faces - masked)


def test_windows_come_from_the_right_buckets_and_staleness_from_last_seen() -> None:
    history = [bucket(10, 10)] * 45 + [bucket(4, 1)] * 15  # only the last 15 are the 15 min
    short = [Counters()] * 5 + [bucket(2, 2)]
    day = [bucket(100, 50)] * 24
    replies = CameraReplies(
        "cam", (NOW - 45) * 1000, None, {"camera_silent:state": "firing"}, {}, history, short, day
    )
    status = camera_status(replies, NOW, stale_after_s=30)
    w = {x.window: x for x in status.windows}
    assert (w["1m"].faces, w["1m"].compliance) == (2, 1.0)
    assert (w["15m"].faces, w["15m"].with_mask, w["15m"].compliance) == (60, 15, 0.25)
    assert (w["24h"].faces, w["24h"].compliance) == (2400, 0.5)
    assert status.stale and status.silent_for_s == 45.0 and status.firing
    assert len(status.history) == 60 and status.history[-1].start.timestamp() == NOW - 30
    assert status.latest is None
    summary = camera_summary(replies, NOW, stale_after_s=30)
    assert summary.windows == status.windows and summary.alerts == status.alerts
    assert summary.spark == [p.compliance for p in status.history]
    assert summary.spark[0] == 1.0 and summary.spark[-1] == 0.25
