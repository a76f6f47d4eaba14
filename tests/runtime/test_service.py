"""ServiceRuntime over real HTTP on a free port: liveness, readiness, metrics, signals."""

from __future__ import annotations

import os
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, Counter

from runtime.service import ServiceRuntime


def get(runtime: ServiceRuntime, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{runtime.port}{path}", timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def runtime(registry: CollectorRegistry) -> Iterator[ServiceRuntime]:
    service = ServiceRuntime("test", health_port=0, registry=registry, host="127.0.0.1")
    yield service
    service.close()


def test_readiness_follows_the_service(runtime: ServiceRuntime) -> None:
    assert get(runtime, "/readyz") == (503, "not ready: starting\n")
    runtime.health.set_ready(True)
    assert get(runtime, "/readyz") == (200, "ready\n")
    runtime.health.set_ready(False, "model server unreachable")
    assert get(runtime, "/readyz") == (503, "not ready: model server unreachable\n")
    runtime.health.set_ready(True)
    runtime.stopping.set()
    assert get(runtime, "/readyz")[0] == 503, "a stopping service takes no new work"


def test_a_block_holds_readiness_down_whatever_the_stage_flag_says(
    runtime: ServiceRuntime,
) -> None:
    runtime.health.set_ready(True)
    runtime.health.block("kafka", "broker unreachable")
    runtime.health.set_ready(True)  # the stage's own work succeeding does not lift it
    assert get(runtime, "/readyz") == (503, "not ready: kafka: broker unreachable\n")
    runtime.health.block("kafka", None)
    assert get(runtime, "/readyz") == (200, "ready\n")
    runtime.health.set_ready(False, "redis down")
    assert get(runtime, "/readyz") == (503, "not ready: redis down\n")  # lifting is per block


def test_liveness_needs_a_turning_loop(runtime: ServiceRuntime) -> None:
    runtime.health.beat()
    assert get(runtime, "/healthz") == (200, "ok\n")
    runtime.health.stall_after_s = 0.05
    time.sleep(0.1)
    assert get(runtime, "/healthz") == (503, "stalled\n")
    runtime.health.beat()
    runtime.health.stall_after_s = 60
    assert get(runtime, "/healthz")[0] == 200


def test_metrics_come_from_the_registry(
    runtime: ServiceRuntime, registry: CollectorRegistry
) -> None:
    frames = Counter("test_frames", "Frames seen.", registry=registry)
    frames.inc(3)
    status, body = get(runtime, "/metrics")
    assert status == 200
    assert "test_frames_total 3.0" in body
    assert get(runtime, "/nope")[0] == 404


def test_sigterm_requests_a_graceful_stop(runtime: ServiceRuntime) -> None:
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    try:
        runtime.install_signal_handlers()
        os.kill(os.getpid(), signal.SIGTERM)
        assert runtime.stopping.wait(5)
    finally:
        signal.signal(signal.SIGTERM, before[0])
        signal.signal(signal.SIGINT, before[1])


def test_no_port_means_no_server() -> None:
    service = ServiceRuntime("quiet", health_port=None)
    assert service.port is None
    service.close()
