"""The read API over real Redis: views, staleness, alerts, auth, probes and the event stream."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest

from workers.aggregator.synthetic import result, stream
from workers.api.settings import ApiSettings

from .conftest import Feeder, LiveServer, camera_ids, cameras_when, serve

pytestmark = pytest.mark.integration


def test_cameras_view_reports_windows_history_and_staleness(
    live_api: LiveServer, feeder: Feeder
) -> None:
    now = time.time()
    fresh = [result("cam-a", s, now - 20 + s, masked=3, unmasked=1) for s in range(10)]
    old = [result("cam-b", 1, now - 40, masked=1), result("cam-b", 2, now - 35, skipped=True)]
    feeder.feed(fresh + old, now)

    body = cameras_when(
        live_api.url,
        lambda b: b["lifetime"]["frames"] == 12 and any(c["firing"] for c in b["cameras"]),
    )
    cams = {c["camera_id"]: c for c in body["cameras"]}
    assert sorted(cams) == ["cam-a", "cam-b"] and body["total"] == 2
    a, b = cams["cam-a"], cams["cam-b"]
    w = {x["window"]: x for x in a["windows"]}
    assert (w["1m"]["faces"], w["1m"]["with_mask"], w["1m"]["compliance"]) == (40, 30, 0.75)
    assert w["15m"]["faces"] == w["24h"]["faces"] == 40
    assert len(a["spark"]) == 60 and {x for x in a["spark"] if x is not None} == {0.75}
    assert "history" not in a
    detail = httpx.get(f"{live_api.url}/api/v1/cameras/cam-a").json()
    assert len(detail["history"]) == 60 and sum(p["faces"] for p in detail["history"]) == 40
    assert detail["windows"] == a["windows"]
    assert a["latest"]["seq"] == 9 and a["stale"] is False
    assert b["stale"] is True and b["latest"]["status"] == "skipped"
    wb = {x["window"]: x for x in b["windows"]}
    assert (wb["15m"]["frames"], wb["15m"]["skipped"], wb["15m"]["faces"]) == (2, 1, 1)
    assert body["lifetime"]["frames"] == 12 and body["lifetime"]["faces"] == 41
    assert a["firing"] is True  # 75 % of 40 faces over 1 min, min_faces 10, threshold 80 %


def test_one_camera_and_unknown_or_malformed_ids(live_api: LiveServer, feeder: Feeder) -> None:
    feeder.feed([result("cam-a", 1, time.time(), masked=2)])
    one = httpx.get(f"{live_api.url}/api/v1/cameras/cam-a")
    assert one.status_code == 200 and one.json()["camera_id"] == "cam-a"
    assert httpx.get(f"{live_api.url}/api/v1/cameras/nope").status_code == 404
    assert httpx.get(f"{live_api.url}/api/v1/cameras/bad:id").status_code == 422


def test_alerts_lists_events_newest_first(live_api: LiveServer, feeder: Feeder) -> None:
    now = time.time()
    feeder.feed([result("cam-a", s, now - 2, unmasked=4) for s in range(5)], now)
    feeder.feed([result("cam-a", s, now - 1, masked=4) for s in range(5, 40)], now)
    events = httpx.get(f"{live_api.url}/api/v1/alerts", params={"limit": 10}).json()
    assert [(e["rule"], e["state"]) for e in events] == [
        ("low_compliance", "resolved"),
        ("low_compliance", "firing"),
    ]
    only = httpx.get(f"{live_api.url}/api/v1/alerts", params={"camera_id": "other"}).json()
    assert only == []


def test_bearer_token_guards_the_api_but_not_probes(token_api: LiveServer) -> None:
    url = f"{token_api.url}/api/v1/cameras"
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert httpx.get(url, headers={"Authorization": "Bearer s3cret-token"}).status_code == 200
    for open_path in ("/healthz", "/readyz", "/openapi.json", "/"):
        assert httpx.get(f"{token_api.url}{open_path}").status_code == 200, open_path


def test_the_dashboard_login_sets_a_strict_http_only_session_cookie(
    token_api: LiveServer,
) -> None:
    url = f"{token_api.url}/api/v1/cameras"
    wrong = httpx.post(f"{token_api.url}/auth/login", json={"token": "wrong"})
    assert wrong.status_code == 401 and "set-cookie" not in wrong.headers
    with httpx.Client(base_url=token_api.url) as browser:
        login = browser.post("/auth/login", json={"token": "s3cret-token"})
        assert login.status_code == 204
        cookie = login.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
        assert "s3cret-token" not in cookie  # an HMAC of the token, not the token
        assert browser.get("/api/v1/cameras").status_code == 200
        with browser.stream("GET", "/api/v1/stream") as events:  # what EventSource sends
            assert events.status_code == 200
        assert browser.post("/auth/logout").status_code == 204
        assert browser.get("/api/v1/cameras").status_code == 401
    forged = httpx.get(url, cookies={"maskwatch_session": "0" * 64})
    assert forged.status_code == 401


def health_ready(server: LiveServer, answer: str, timeout_s: float = 30.0) -> bool:
    """Whether the health port's /readyz starts with `answer` within `timeout_s` (it reflects
    the first Redis PING of the app's health task, which runs after start-up)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if httpx.get(f"{server.health_url}/readyz").text.startswith(answer):
            return True
        time.sleep(0.1)
    return False


def test_probes_on_both_ports_and_metrics_only_on_the_health_port(live_api: LiveServer) -> None:
    assert httpx.get(f"{live_api.url}/healthz").text == "ok\n"
    assert httpx.get(f"{live_api.url}/readyz").status_code == 200
    assert httpx.get(f"{live_api.health_url}/healthz").text == "ok\n"
    assert health_ready(live_api, "ready\n")
    httpx.get(f"{live_api.url}/api/v1/cameras")
    assert httpx.get(f"{live_api.url}/metrics").status_code == 404  # not on the public port
    metrics = httpx.get(f"{live_api.health_url}/metrics").text
    assert 'maskwatch_api_requests_total{route="/api/v1/cameras",status="200"}' in metrics


def test_readyz_fails_when_redis_is_unreachable(redis_prefix: str) -> None:
    server = serve(ApiSettings(redis_url="redis://127.0.0.1:1/0", key_prefix=redis_prefix))
    try:
        reply = httpx.get(f"{server.url}/readyz")
        assert reply.status_code == 503 and "redis" in reply.text
        assert health_ready(server, "not ready: redis")
    finally:
        server.stop()


def read_events(
    lines: Iterator[str], want: Callable[[str, Any], bool], timeout_s: float
) -> dict[str, Any]:
    """Parse SSE lines until `want(type, data)` has held for each type wanted, or time is up."""
    got: dict[str, Any] = {}
    kind, deadline = "message", time.monotonic() + timeout_s
    for line in lines:
        if line.startswith("event:"):
            kind = line[6:].strip()
        elif line.startswith("data:") and kind not in got:
            data = json.loads(line[5:])
            if want(kind, data):
                got[kind] = data
        if time.monotonic() > deadline or want("", got):
            break
    return got


def test_stream_sends_totals_and_cameras_then_only_changes_and_alerts(
    live_api: LiveServer, feeder: Feeder
) -> None:
    now = time.time()
    feeder.feed(stream(["cam-s", "cam-t"], 3, now - 2))
    cameras_when(live_api.url, lambda b: len(b["cameras"]) == 2)
    with httpx.stream("GET", f"{live_api.url}/api/v1/stream", timeout=10) as reply:
        assert reply.headers["content-type"].startswith("text/event-stream")
        lines = reply.iter_lines()
        first = read_events(lines, lambda k, d: k in ("totals", "cameras") or len(d) == 2, 5)
        assert [c["camera_id"] for c in first["cameras"]["cameras"]] == ["cam-s", "cam-t"]
        assert first["totals"]["lifetime"]["frames"] == 6
        feeder.feed([result("cam-s", 100 + s, time.time(), unmasked=5) for s in range(4)])
        later = read_events(lines, lambda k, d: k in ("cameras", "alert") or len(d) == 2, 5)
    # only the camera that changed, with its newest frame
    assert [c["camera_id"] for c in later["cameras"]["cameras"]] == ["cam-s"]
    assert later["cameras"]["cameras"][0]["latest"]["seq"] == 103
    assert (later["alert"]["rule"], later["alert"]["state"]) == ("low_compliance", "firing")


def test_stream_catch_up_sends_only_cameras_changed_since(
    live_api: LiveServer, feeder: Feeder
) -> None:
    if time.time() % 60 > 50:  # a new minute shifts every sparkline: a change for all
        time.sleep(61 - time.time() % 60)
    feeder.feed(stream(["cam-u", "cam-v"], 3, time.time() - 2))
    cameras_when(live_api.url, lambda b: len(b["cameras"]) == 2)
    time.sleep(2.5)  # the first changes older than the catch-up margin
    body = httpx.get(f"{live_api.url}/api/v1/cameras").json()
    feeder.feed([result("cam-v", 50, time.time(), masked=2)])
    cameras_when(live_api.url, lambda b: b["cameras"][1]["latest"]["seq"] == 50)
    since_ms = int(datetime.fromisoformat(body["at"]).timestamp() * 1000)
    url = f"{live_api.url}/api/v1/stream?since_ms={since_ms}"
    with httpx.stream("GET", url, timeout=10) as reply:
        got = read_events(reply.iter_lines(), lambda k, d: k == "cameras" or "cameras" in d, 5)
    assert [c["camera_id"] for c in got["cameras"]["cameras"]] == ["cam-v"]


def test_cameras_filter_by_label_and_paginate(live_api: LiveServer, feeder: Feeder) -> None:
    now = time.time()
    feeder.feed(
        [
            result("cam-1", 1, now, masked=1, labels={"site": "north", "zone": "a"}),
            result("cam-2", 1, now, masked=1, labels={"site": "north", "zone": "b"}),
            result("cam-3", 1, now, masked=1, labels={"site": "south"}),
        ]
    )
    everything = cameras_when(live_api.url, lambda b: len(b["cameras"]) == 3)
    assert everything["cameras"][2]["labels"] == {"site": "south"}
    north = cameras_when(live_api.url, lambda b: True, label="site=north")
    assert camera_ids(north) == ["cam-1", "cam-2"] and north["total"] == 2
    both = httpx.get(
        f"{live_api.url}/api/v1/cameras", params=[("label", "site=north"), ("label", "zone=b")]
    ).json()
    assert camera_ids(both) == ["cam-2"]
    page = cameras_when(live_api.url, lambda b: True, offset=1, limit=1)
    assert camera_ids(page) == ["cam-2"] and (page["total"], page["offset"]) == (3, 1)
    bad = httpx.get(f"{live_api.url}/api/v1/cameras", params={"label": "no-equals"})
    assert bad.status_code == 422

    sites = httpx.get(f"{live_api.url}/api/v1/labels/site").json()
    assert [(g["value"], g["cameras"]) for g in sites["groups"]] == [("north", 2), ("south", 1)]
    north_1m = next(w for w in sites["groups"][0]["windows"] if w["window"] == "1m")
    assert (north_1m["faces"], north_1m["with_mask"], north_1m["compliance"]) == (2, 2, 1.0)
    metrics = httpx.get(f"{live_api.health_url}/metrics").text
    assert 'maskwatch_label_compliance_ratio{label="site",value="north",window="1m"} 1.0' in metrics
    assert 'maskwatch_camera_faces{camera="cam-3",window="15m"} 1.0' in metrics
    assert 'maskwatch_camera_silent_seconds{camera="cam-1"}' in metrics
    zones = httpx.get(f"{live_api.url}/api/v1/labels/zone").json()
    assert [g["value"] for g in zones["groups"]] == ["a", "b"]  # cam-3 has no zone
