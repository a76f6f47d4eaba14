"""The live dashboard in headless Debian Chromium (Selenium + chromedriver from apt).

A real API over real Redis, fed by a real Aggregator: tiles appear with the API's numbers,
stale and alerting cameras are marked, and new data shows up without a page reload; a fleet
of 500 labelled cameras paints within 2 s and search and the label filter narrow it; a
camera configured but never sent and a disconnected one show as such; a tile opens the
camera's page, whose charts have axes and follow the range buttons.
Screenshots go to pytest's tmp folder; `deploy/local/screenshots.sh` sets
MASKWATCH_SCREENSHOT_DIR=docs to refresh the ones the README shows (tests never write
tracked files).
"""

from __future__ import annotations

import math
import os
import shutil
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from schemas.result import FrameResult
from workers.aggregator.synthetic import result
from workers.producer.health_redis import RedisHealthSink

from .conftest import TOKEN, Feeder, LiveServer, cameras_when, configure

pytestmark = [pytest.mark.integration, pytest.mark.browser]

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    """Where screenshots go: tmp, unless a script asks for the README's folder."""
    chosen = os.environ.get("MASKWATCH_SCREENSHOT_DIR")
    folder = Path(chosen) if chosen else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def browser() -> Iterator[Any]:
    from tests.conftest import missing

    if not (Path(CHROMIUM).exists() and shutil.which(CHROMEDRIVER)):
        missing("chromium and chromium-driver (apt) are needed for the browser test")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1360,600",
        "--hide-scrollbars",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def hour_of(camera: str, now: float, level: float, seq0: int = 0) -> list[FrameResult]:
    """One result every 20 s over the last hour, compliance swinging around `level`."""
    out = []
    for i in range(180):
        t = now - 3600 + 20 * i + 10
        share = min(1.0, max(0.0, level + 0.12 * math.sin(i / 9)))
        faces = 4 + i % 4
        masked = round(faces * share)
        out.append(result(camera, seq0 + i, t, masked=masked, unmasked=faces - masked))
    return out


def wait_until(driver: Any, script: str, timeout_s: float = 15) -> object:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = driver.execute_script(script)
        if value:
            return value
        time.sleep(0.1)
    pytest.fail(f"browser never satisfied: {script}")


def test_dashboard_shows_tiles_and_updates_live(
    live_api: LiveServer, feeder: Feeder, browser: Any, shots: Path
) -> None:
    now = time.time()
    feeder.feed(hour_of("lobby", now, 0.93) + hour_of("gate-north", now, 0.55), now)
    feeder.feed([result("parking", s, now - 300 + s, masked=2, unmasked=1) for s in range(40)], now)
    feeder.feed([result("lobby", 500 + s, now - 60 + s, skipped=True) for s in range(5)], now)
    feeder.silence_check(now)
    driver = browser
    driver.get(live_api.url + "/")
    wait_until(driver, "return document.querySelectorAll('.tile').length === 3")
    driver.execute_script("window.__sameDocument = true")

    tiles = driver.execute_script(
        "return [...document.querySelectorAll('.tile')].map(t => ({id: t.dataset.camera,"
        " pct: t.querySelector('.compliance').firstChild.textContent,"
        " cls: t.className, spark: t.querySelectorAll('.spark polyline').length,"
        " skipped: t.querySelector('.skipped')?.textContent ?? null}))"
    )
    by_id = {t["id"]: t for t in tiles}
    api = httpx.get(f"{live_api.url}/api/v1/cameras").json()
    for cam in api["cameras"]:
        w15 = next(w for w in cam["windows"] if w["window"] == "15m")
        shown = by_id[cam["camera_id"]]["pct"]
        expected = "–" if w15["compliance"] is None else f"{w15['compliance'] * 100:.1f}%"
        assert shown == expected, cam["camera_id"]
        share = f"skipped {w15['skipped'] / w15['frames'] * 100:.0f}%" if w15["skipped"] else None
        assert by_id[cam["camera_id"]]["skipped"] == share, cam["camera_id"]
    assert "stale" in by_id["parking"]["cls"]
    assert "firing" in by_id["gate-north"]["cls"] and "stale" not in by_id["lobby"]["cls"]
    assert by_id["lobby"]["spark"] >= 1

    # live: a new camera and new frames for an existing one arrive over the stream
    before = int(driver.execute_script("return +document.body.dataset.updates"))
    frames_before = driver.execute_script(
        "return document.querySelector('.tile[data-camera=\"lobby\"] .frames b').textContent"
    )
    feeder.feed([result("entrance", s, time.time(), masked=3) for s in range(6)])
    feeder.feed([result("lobby", 1000 + s, time.time(), masked=5) for s in range(5)])
    wait_until(driver, "return document.querySelector('.tile[data-camera=\"entrance\"]')")
    wait_until(
        driver,
        "return document.querySelector('.tile[data-camera=\"lobby\"] .frames b').textContent"
        f" !== '{frames_before}'",
    )
    assert driver.execute_script("return window.__sameDocument === true")
    assert int(driver.execute_script("return +document.body.dataset.updates")) > before
    assert driver.execute_script("return document.getElementById('conn').textContent") == "live"
    alerts = driver.execute_script("return document.querySelectorAll('#alerts li').length")
    assert alerts >= 2  # gate-north low compliance, parking silent

    shot = shots / "dashboard.png"
    assert driver.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000


SITES, ZONES = ("north", "south", "east", "west", "harbour"), ("gate", "hall", "platform", "lot")


def fleet(n: int, now: float) -> list[FrameResult]:
    """`n` cameras, each with a site and a zone label and a few recent frames."""
    out = []
    for i in range(n):
        labels = {"site": SITES[i % len(SITES)], "zone": ZONES[i % len(ZONES)]}
        for s in range(2):
            out.append(
                result(f"cam-{i:03d}", s, now - 2 + s, masked=i % 4, unmasked=1, labels=labels)
            )
    return out


def shown(driver: Any) -> int:
    return int(driver.execute_script("return document.querySelectorAll('#tiles .tile').length"))


def set_control(driver: Any, control: str, value: str) -> None:
    driver.execute_script(
        "const c = document.getElementById(arguments[0]); c.value = arguments[1];"
        " c.dispatchEvent(new Event('input'));",
        control,
        value,
    )


def test_a_fleet_of_500_paints_within_2_s_and_narrows_by_search_and_label(
    live_api: LiveServer, feeder: Feeder, browser: Any, shots: Path
) -> None:
    feeder.feed(fleet(500, time.time()))
    cameras_when(live_api.url, lambda b: b["total"] == 500, timeout_s=20)
    driver = browser
    driver.get(live_api.url + "/")  # returns at the load event
    wait_until(driver, "return document.querySelectorAll('#tiles .tile').length === 500", 2.0)
    assert driver.execute_script("return document.getElementById('loading').hidden")
    wait_until(driver, "return document.getElementById('conn').textContent === 'live'")

    set_control(driver, "label", "site=north")
    assert shown(driver) == 100
    set_control(driver, "search", "gate")  # zone value; north and gate: every 20th camera
    assert shown(driver) == 25
    set_control(driver, "search", "cam-007")
    assert shown(driver) == 0  # cam-007 is in site east
    set_control(driver, "label", "")
    assert shown(driver) == 1
    set_control(driver, "search", "")
    set_control(driver, "group", "site")
    groups = driver.execute_script(
        "return [...document.querySelectorAll('#tiles .group')].map(g => g.textContent)"
    )
    assert groups == [f"site: {s} · 100" for s in sorted(SITES)]
    set_control(driver, "sort", "compliance")
    first = driver.execute_script("return document.querySelector('#tiles .tile').dataset.camera")
    assert int(first.split("-")[1]) % 4 == 0  # no masked face: the lowest compliance
    assert driver.save_screenshot(str(shots / "dashboard-fleet.png"))


def test_configured_and_disconnected_cameras_show_and_a_tile_opens_its_charts(
    live_api: LiveServer, feeder: Feeder, sink: RedisHealthSink, browser: Any, shots: Path
) -> None:
    now = time.time()
    feeder.feed(hour_of("lobby", now, 0.9), now)
    feeder.feed([result("dock", s, now - 8 + s, masked=1) for s in range(5)], now)
    configure(
        sink,
        {"lobby": "connected", "dock": "disconnected", "roof": "connecting"},
        datetime.now(UTC),
    )
    cameras_when(live_api.url, lambda b: b["total"] == 3, timeout_s=10)
    driver = browser
    driver.get(live_api.url + "/")
    wait_until(driver, "return document.querySelectorAll('#tiles .tile').length === 3")
    states = driver.execute_script(
        "return Object.fromEntries([...document.querySelectorAll('.tile')].map(t =>"
        " [t.dataset.camera, [t.dataset.state, t.className, t.querySelector('.seen').textContent,"
        " t.querySelector('.health').textContent]]))"
    )
    assert states["roof"][0] == "never_seen" and "never-seen" in states["roof"][1]
    assert states["roof"][2].startswith("never seen") and "0.0 / 2 fps" in states["roof"][3]
    assert states["dock"][0] == "disconnected" and "disconnected" in states["dock"][1]
    assert "3 reconnects" in states["dock"][3]
    assert states["lobby"][0] == "live"
    assert driver.save_screenshot(str(shots / "dashboard-health.png"))

    driver.execute_script("document.querySelector('.tile[data-camera=\"lobby\"]').click()")
    wait_until(driver, "return location.pathname === '/cameras/lobby'")
    wait_until(driver, "return document.body.dataset.range === '24h'")
    chart = (
        "return [...document.querySelectorAll('svg.chart')].map(c => ({"
        " kind: c.getAttribute('class'), x: c.querySelectorAll('.x-tick').length,"
        " y: c.querySelectorAll('.y-tick').length,"
        " marks: c.querySelectorAll('polyline.series, circle.dot, rect.bar').length}))"
    )
    charts = driver.execute_script(chart)
    assert [c["kind"] for c in charts] == ["chart chart-line", "chart chart-bars"]
    assert all(c["x"] >= 3 and c["y"] == 5 and c["marks"] >= 1 for c in charts), charts
    assert driver.execute_script("return document.getElementById('title').textContent") == "lobby"
    health = driver.execute_script("return document.getElementById('health').textContent")
    assert "connected" in health and "configured" in health
    csv_link = driver.execute_script("return document.getElementById('csv').getAttribute('href')")
    assert csv_link == "/api/v1/cameras/lobby/history.csv?range=24h"
    driver.execute_script("document.querySelector('.ranges button[data-range=\"1h\"]').click()")
    wait_until(driver, "return document.body.dataset.range === '1h'")
    bars = driver.execute_script(
        "return document.querySelectorAll('svg.chart-bars rect.bar').length"
    )
    assert bars >= 60  # one result every 20 s over the hour: every minute has faces
    driver.set_window_size(1360, 1000)  # both charts in the picture
    assert driver.save_screenshot(str(shots / "camera-detail.png"))

    driver.get(live_api.url + "/cameras/roof")  # never seen: empty charts, still with axes
    wait_until(driver, "return document.body.dataset.range === '24h'")
    assert driver.execute_script("return document.getElementById('state').textContent") == (
        "never seen"
    )
    assert driver.execute_script("return document.querySelectorAll('svg.chart .y-tick').length")


RECORD_EVENT_SOURCES = """
window.__eventSources = [];
const NativeEventSource = window.EventSource;
window.EventSource = class extends NativeEventSource {
  constructor(url, init) { super(url, init); window.__eventSources.push(String(url)); }
};
"""
"""Runs before the page's scripts: records each native EventSource the page opens."""


def test_the_dashboard_logs_in_with_a_cookie_and_streams_through_native_event_source(
    token_api: LiveServer, feeder: Feeder, browser: Any
) -> None:
    now = time.time()
    feeder.feed(hour_of("lobby", now, 0.9), now)
    browser.execute_cdp_cmd(
        "Page.addScriptToEvaluateOnNewDocument", {"source": RECORD_EVENT_SOURCES}
    )
    browser.get(token_api.url + "/")
    wait_until(browser, "return !document.getElementById('auth').hidden")  # 401: asks
    browser.execute_script(
        "document.getElementById('token').value = arguments[0];"
        "document.getElementById('auth').requestSubmit()",
        TOKEN,
    )
    wait_until(browser, "return document.querySelectorAll('.tile').length === 1", 30)
    wait_until(browser, "return document.getElementById('conn').textContent === 'live'")
    sources = browser.execute_script("return window.__eventSources")
    assert sources and all("/api/v1/stream?since_ms=" in url for url in sources), sources
    # the stream (not a reload) brings a new camera
    feeder.feed([result("entrance", s, time.time(), masked=3) for s in range(6)])
    wait_until(browser, "return document.querySelector('.tile[data-camera=\"entrance\"]')")
    # the session is an HttpOnly cookie: no script sees it, no storage holds the token
    assert browser.execute_script("return document.cookie") == ""
    assert browser.execute_script("return localStorage.length + sessionStorage.length") == 0
    assert TOKEN not in str(browser.execute_script("return document.documentElement.outerHTML"))
