"""The read API over real Redis: views, staleness, alerts, auth, probes and the event stream."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from workers.aggregator.synthetic import result, stream
from workers.api.settings import ApiSettings

from .conftest import Feeder, LiveServer, serve

pytestmark = pytest.mark.integration


def test_cameras_view_reports_windows_history_and_staleness(
    live_api: LiveServer, feeder: Feeder
) -> None:
    now = time.time()
    fresh = [result("cam-a", s, now - 20 + s, masked=3, unmasked=1) for s in range(10)]
    old = [result("cam-b", 1, now - 40, masked=1), result("cam-b", 2, now - 35, skipped=True)]
    feeder.feed(fresh + old, now)

    body = httpx.get(f"{live_api.url}/api/v1/cameras").json()
    cams = {c["camera_id"]: c for c in body["cameras"]}
    assert sorted(cams) == ["cam-a", "cam-b"]
    a, b = cams["cam-a"], cams["cam-b"]
    w = {x["window"]: x for x in a["windows"]}
    assert (w["1m"]["faces"], w["1m"]["with_mask"], w["1m"]["compliance"]) == (40, 30, 0.75)
    assert w["15m"]["faces"] == w["24h"]["faces"] == 40
    assert len(a["history"]) == 60 and sum(p["faces"] for p in a["history"]) == 40
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


@pytest.fixture
def token_api(api_settings: ApiSettings, tmp_path: Path) -> Iterator[LiveServer]:
    secret = tmp_path / "token"
    secret.write_text("s3cret-token\n")
    server = serve(api_settings.model_copy(update={"token_file": secret}))
    yield server
    server.stop()


def test_bearer_token_guards_the_api_but_not_probes(token_api: LiveServer) -> None:
    url = f"{token_api.url}/api/v1/cameras"
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert httpx.get(url, headers={"Authorization": "Bearer s3cret-token"}).status_code == 200
    for open_path in ("/healthz", "/readyz", "/metrics", "/openapi.json", "/"):
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


def test_probes_and_metrics(live_api: LiveServer) -> None:
    assert httpx.get(f"{live_api.url}/healthz").text == "ok\n"
    assert httpx.get(f"{live_api.url}/readyz").status_code == 200
    httpx.get(f"{live_api.url}/api/v1/cameras")
    metrics = httpx.get(f"{live_api.url}/metrics").text
    assert 'maskwatch_api_requests_total{route="/api/v1/cameras",status="200"}' in metrics


def test_readyz_fails_when_redis_is_unreachable(redis_prefix: str) -> None:
    server = serve(ApiSettings(redis_url="redis://127.0.0.1:1/0", key_prefix=redis_prefix))
    try:
        reply = httpx.get(f"{server.url}/readyz")
        assert reply.status_code == 503 and "redis" in reply.text
    finally:
        server.stop()


def read_events(lines: Iterator[str], want: set[str], timeout_s: float) -> dict[str, dict]:  # type: ignore[type-arg]
    """Parse SSE lines until one event of each wanted type arrived (or time is up)."""
    got: dict[str, dict] = {}  # type: ignore[type-arg]
    kind, deadline = "message", time.monotonic() + timeout_s
    for line in lines:
        if line.startswith("event:"):
            kind = line[6:].strip()
        elif line.startswith("data:") and kind in want and kind not in got:
            got[kind] = json.loads(line[5:])
        if set(got) >= want or time.monotonic() > deadline:
            break
    return got


def test_stream_sends_a_snapshot_then_camera_updates_and_alerts(
    live_api: LiveServer, feeder: Feeder
) -> None:
    now = time.time()
    feeder.feed(stream(["cam-s"], 3, now - 2))
    with httpx.stream("GET", f"{live_api.url}/api/v1/stream", timeout=10) as reply:
        assert reply.headers["content-type"].startswith("text/event-stream")
        lines = reply.iter_lines()
        first = read_events(lines, {"snapshot"}, 5)
        assert [c["camera_id"] for c in first["snapshot"]["cameras"]] == ["cam-s"]
        feeder.feed([result("cam-s", 100 + s, time.time(), unmasked=5) for s in range(4)])
        later = read_events(lines, {"camera", "alert"}, 5)
    assert later["camera"]["camera_id"] == "cam-s"
    assert later["camera"]["latest"]["seq"] == 103
    assert (later["alert"]["rule"], later["alert"]["state"]) == ("low_compliance", "firing")
