"""Camera state, health comparison, never-seen summaries and the history CSV (pure)."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime

import pytest

from schemas.camera_health import CameraHealth
from schemas.redis_state import SPANS, Counters, span_starts
from workers.api.history import CSV_COLUMNS, camera_history, history_csv
from workers.api.models import camera_state, unseen_summary
from workers.api.overview import Entry, aged, same_health

NOW = 1_800_000_030.0
AT = datetime.fromtimestamp(NOW, UTC)


def health(state: str = "connected", fps: float = 2.0, **more: object) -> CameraHealth:
    return CameraHealth.model_validate(
        {
            "camera_id": "gate",
            "producer": "p-0",
            "state": state,
            "since": AT,
            "configured_fps": 2.0,
            "actual_fps": fps,
            "reconnects": 0,
            "dropped": 0,
            "updated_at": AT,
            "ttl_s": 15,
            **more,
        }
    )


@pytest.mark.parametrize(
    ("seen", "stale", "report", "state"),
    [
        (True, False, None, "live"),
        (True, True, None, "stale"),
        (True, False, "disconnected", "disconnected"),  # the producer knows before silence shows
        (False, False, None, "never_seen"),
        (False, False, "connecting", "never_seen"),
        (False, False, "disconnected", "disconnected"),
        (True, True, "connected", "stale"),
    ],
)
def test_camera_state(seen: bool, stale: bool, report: str | None, state: str) -> None:
    assert camera_state(seen, stale, health(report) if report else None) == state


def test_health_timestamps_and_small_fps_swings_are_not_changes() -> None:
    base = health(fps=2.0)
    later = health(fps=1.9, updated_at=datetime.fromtimestamp(NOW + 5, UTC), last_frame_at=AT)
    assert same_health(base, later)
    assert not same_health(base, health(fps=1.0))
    assert not same_health(base, health(reconnects=1))
    assert not same_health(base, health("disconnected"))
    assert not same_health(base, None) and same_health(None, None)


def test_a_never_seen_camera_has_empty_windows_and_keeps_its_state_as_it_ages() -> None:
    summary = unseen_summary("roof", {"site": "north"}, health("connecting"))
    assert summary.state == "never_seen" and summary.configured and summary.last_seen is None
    assert all(w.frames == 0 and w.compliance is None for w in summary.windows)
    assert summary.spark == [None] * 60 and not summary.firing
    assert aged(summary, NOW + 3600, 60) == summary  # no silence to age


def test_history_csv_has_one_row_per_bucket_with_empty_compliance_without_faces() -> None:
    span = SPANS["24h"]
    starts = span_starts(NOW, span)
    counters = [Counters()] * 23 + [
        Counters(frames=4, skipped=1, faces=8, with_mask=6, without_mask=2)
    ]
    history = camera_history("gate", span, starts, counters, NOW)
    assert history.resolution_s == 3600 and history.points[-1].compliance == 0.75
    assert history.points[-1].skipped_share == 0.25
    text = history_csv(history)
    assert text.startswith(",".join(CSV_COLUMNS) + "\r\n")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 24 and rows[0]["compliance"] == "" and rows[0]["skipped_share"] == ""
    last = rows[-1]
    assert (last["faces"], last["compliance"], last["skipped_share"]) == (
        "8",
        "0.750000",
        "0.250000",
    )
    assert last["start"].endswith("Z") and last["start"] == "2027-01-15T08:00:00Z"
    assert last["end"] == "2027-01-15T09:00:00Z"


def test_a_held_summary_json_is_the_aged_summary_serialised() -> None:
    seen = unseen_summary("roof", {"site": "north"}, health("disconnected")).model_copy(
        update={"last_seen": datetime.fromtimestamp(NOW - 90, UTC), "silent_for_s": 0.0}
    )
    for summary in (seen, unseen_summary("roof", {}, None)):
        entry = Entry(summary, 0)
        for now, stale_after_s in ((NOW, 60.0), (NOW, 120.0), (NOW + 0.1234, 30.0)):
            expected = aged(summary, now, stale_after_s).model_dump(mode="json")
            assert json.loads(entry.json_at(now, stale_after_s)) == expected
