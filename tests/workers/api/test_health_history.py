"""Camera health and history through the real API process over the stack's Redis: health
records as a producer's Redis sink writes them, results as the real aggregator applies them."""

from __future__ import annotations

import csv
import io
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import redis

from schemas.redis_state import Keys
from workers.aggregator.synthetic import result
from workers.api.history import CSV_COLUMNS
from workers.producer.health_redis import RedisHealthSink

from .conftest import Feeder, LiveServer, cameras_when, configure

pytestmark = pytest.mark.integration
DAY = 86400


def by_id(body: dict[str, object]) -> dict[str, dict[str, object]]:
    return {c["camera_id"]: c for c in body["cameras"]}  # type: ignore[attr-defined, index]


def test_configured_never_seen_and_disconnected_cameras_are_listed(
    live_api: LiveServer, feeder: Feeder, sink: RedisHealthSink
) -> None:
    now = time.time()
    feeder.feed([result("lobby", s, now - 5 + s, masked=2) for s in range(5)], now)
    feeder.feed([result("dock", s, now - 5 + s, masked=1) for s in range(5)], now)
    configure(
        sink,
        {"lobby": "connected", "dock": "disconnected", "roof": "connecting"},
        datetime.now(UTC),
    )
    body = cameras_when(live_api.url, lambda b: b["total"] == 3, timeout_s=8)
    cams = by_id(body)
    assert set(cams) == {"lobby", "dock", "roof"}
    assert cams["lobby"]["state"] == "live" and cams["lobby"]["configured"] is True
    assert cams["dock"]["state"] == "disconnected"
    assert cams["dock"]["health"]["reconnects"] == 3  # type: ignore[index]
    roof = cams["roof"]
    assert roof["state"] == "never_seen" and roof["last_seen"] is None
    assert roof["labels"] == {"site": "north"}  # from the configuration
    assert roof["health"]["state"] == "connecting"  # type: ignore[index]
    assert all(w["frames"] == 0 for w in roof["windows"])  # type: ignore[attr-defined]
    one = httpx.get(f"{live_api.url}/api/v1/cameras/roof").json()
    assert one["state"] == "never_seen" and one["history"] == []
    assert httpx.get(f"{live_api.url}/api/v1/cameras/nowhere").status_code == 404
    # the skipped share the detector left in the results is in every window
    lobby_15m = next(w for w in cams["lobby"]["windows"] if w["window"] == "15m")  # type: ignore[attr-defined]
    assert lobby_15m["skipped_share"] == 0.0


def test_an_expired_health_record_leaves_the_camera_unreported(
    live_api: LiveServer, sink: RedisHealthSink, redis_client: redis.Redis, redis_prefix: str
) -> None:
    configure(sink, {"roof": "disconnected"}, datetime.now(UTC))
    body = cameras_when(live_api.url, lambda b: b["total"] == 1, timeout_s=8)
    assert by_id(body)["roof"]["state"] == "disconnected"
    redis_client.delete(Keys(redis_prefix).health("roof"))  # as its TTL would
    body = cameras_when(live_api.url, lambda b: by_id(b)["roof"]["health"] is None, timeout_s=8)
    roof = by_id(body)["roof"]
    assert roof["health"] is None and roof["state"] == "never_seen" and roof["configured"]


def test_health_timestamps_stay_current_in_the_list_without_announcements(
    live_api: LiveServer, sink: RedisHealthSink
) -> None:
    first = datetime.now(UTC).replace(microsecond=0)
    configure(sink, {"roof": "connected"}, first)
    cameras_when(live_api.url, lambda b: b["total"] == 1, timeout_s=8)
    later = first + timedelta(seconds=7)
    configure(sink, {"roof": "connected"}, later)  # same state: no change for a viewer
    body = cameras_when(
        live_api.url,
        lambda b: datetime.fromisoformat(by_id(b)["roof"]["health"]["updated_at"]) == later,  # type: ignore[index]
        timeout_s=8,
    )
    health = by_id(body)["roof"]["health"]
    assert datetime.fromisoformat(health["last_frame_at"]) == later  # type: ignore[index]


def test_history_spans_and_csv_export(live_api: LiveServer, feeder: Feeder) -> None:
    now = time.time()
    # oldest first (the aggregator refuses results far below a camera's newest as late)
    ages_s = [20 * DAY, 3 * DAY, 2 * 3600, 120]
    for i, age in enumerate(ages_s):
        feeder.feed([result("lobby", i, now - age, masked=3, unmasked=1)], now)
    cameras_when(live_api.url, lambda b: b["total"] == 1)
    url = f"{live_api.url}/api/v1/cameras/lobby/history"
    spans = {r: httpx.get(url, params={"range": r}).json() for r in ("1h", "24h", "7d", "30d")}
    assert [len(spans[r]["points"]) for r in spans] == [60, 24, 168, 30]
    assert [spans[r]["resolution_s"] for r in spans] == [60, 3600, 3600, DAY]
    faces = {r: sum(p["faces"] for p in s["points"]) for r, s in spans.items()}
    assert faces == {"1h": 4, "24h": 8, "7d": 12, "30d": 16}
    assert spans["30d"]["points"][-1]["compliance"] == 0.75
    assert httpx.get(url, params={"range": "2y"}).status_code == 422
    assert httpx.get(f"{live_api.url}/api/v1/cameras/nowhere/history").status_code == 404

    export = httpx.get(f"{url}.csv", params={"range": "7d"})
    assert export.headers["content-type"].startswith("text/csv")
    assert 'filename="lobby-7d.csv"' in export.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(export.text)))
    assert tuple(rows[0]) == CSV_COLUMNS and len(rows) == 168
    assert sum(int(r["faces"]) for r in rows) == 12
    with_faces = [r for r in rows if r["faces"] != "0"]
    assert all(float(r["compliance"]) == 0.75 for r in with_faces)
    assert all(r["compliance"] == "" for r in rows if r["faces"] == "0")
    start, end = (datetime.fromisoformat(rows[-1][k]) for k in ("start", "end"))
    assert end - start == timedelta(hours=1) and start.tzinfo is not None
