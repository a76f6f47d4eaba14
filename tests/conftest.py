"""Shared fixtures: the real local stack (Kafka, Redis, model server), per-test names, ../shared.

Integration tests (`@pytest.mark.integration`) talk to the stack `maskwatch stack up` starts.
When it is not up they are skipped with a message saying how to start it, except under CI
(CI=true), where they fail: CI starts the stack, so its absence is a bug, never a pass.
The same rule holds for `shared_dir` (../shared with the real data and offline weights).

Tests run beside other test runs on the same machine and stack, so every Kafka topic,
consumer group and Redis key a test touches carries a name unique to that test.
"""

from __future__ import annotations

import os
import re
import socket
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from hypothesis import HealthCheck, settings

# kafka-python loads its protocol schemas through importlib.resources' legacy API at import.
warnings.filterwarnings("ignore", "(read|open)_text is deprecated", DeprecationWarning)

from runtime.kafka import KafkaSettings, broker_info, create_topics, delete_topics  # noqa: E402

pytest_plugins = ["tests.private_stack"]  # the session's private Kafka + Redis (restarts)
REPO_ROOT = Path(__file__).resolve().parents[1]
IN_CI = os.environ.get("CI", "").strip().lower() in {"true", "1"}
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
MODEL_SERVER = ("127.0.0.1", 8500)

# Shared, loaded cores make wall-clock deadlines flaky; examples stay bounded by count.
settings.register_profile("maskwatch", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("maskwatch")


def missing(reason: str) -> None:
    """Skip a test whose prerequisite is absent; under CI, fail it instead."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: a missing prerequisite is a failure)", pytrace=False)
    pytest.skip(reason)


def _port_open(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def _redis_answers() -> bool:
    try:
        with socket.create_connection((REDIS_HOST, REDIS_PORT), timeout=1.0) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@pytest.fixture(scope="session")
def stack_problem() -> str | None:
    """None if Kafka and Redis answer, else what is missing (probed once per session)."""
    settings = KafkaSettings()
    problems = []
    try:
        if not broker_info(settings, timeout_ms=3_000).broker_ids:
            problems.append("Kafka has no unfenced broker")
    except Exception as error:  # any failure to reach the broker means "not up"
        problems.append(f"Kafka at {settings.bootstrap_servers} does not answer ({error!r})")
    if not _redis_answers():
        problems.append(f"Redis at {REDIS_HOST}:{REDIS_PORT} does not answer PING")
    if not problems:
        return None
    return "local stack is not up: " + "; ".join(problems) + " - run `maskwatch stack up`"


@pytest.fixture(autouse=True)
def _require_stack(request: pytest.FixtureRequest) -> None:
    """Integration tests need the stack: skip (or fail under CI) with a clear message."""
    if request.node.get_closest_marker("integration") is None:
        return
    problem = request.getfixturevalue("stack_problem")
    if problem:
        missing(problem)


@pytest.fixture
def unique_name(request: pytest.FixtureRequest) -> str:
    """A name unique to this test run: test name + random suffix (Kafka/Redis-safe chars)."""
    base = re.sub(r"[^A-Za-z0-9_-]+", "-", request.node.name)[:40].strip("-")
    return f"{base}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def kafka_settings(unique_name: str, stack_problem: str | None) -> Iterator[KafkaSettings]:
    """KafkaSettings whose topics exist, are unique to this test, and are deleted after it.

    Topics get 3 partitions (frames, results) so consumer-group behaviour is real but cheap;
    the broker does not auto-create topics, so these are the only ones a test may use.
    """
    if stack_problem:
        missing(stack_problem)
    prefix = f"test.{unique_name}"
    settings = KafkaSettings.with_topic_prefix(prefix, partitions=3)
    create_topics(settings)
    yield settings
    delete_topics(
        settings,
        [
            settings.frames_topic,
            settings.results_topic,
            settings.dead_letter_topic,
            settings.alerts_topic,
        ],
    )


@pytest.fixture
def redis_client(stack_problem: str | None) -> Iterator[redis.Redis]:
    """A redis-py client of the stack's Redis (DB 0, bytes); pair it with `redis_prefix`."""
    if stack_problem:
        missing(stack_problem)
    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=0, socket_timeout=5)
    yield client
    client.close()


@pytest.fixture
def redis_prefix(unique_name: str, redis_client: redis.Redis) -> Iterator[str]:
    """A key prefix unique to this test; every key under it is deleted afterwards."""
    prefix = f"test:{unique_name}:"
    yield prefix
    keys = list(redis_client.scan_iter(match=f"{prefix}*", count=500))
    if keys:
        redis_client.delete(*keys)


@pytest.fixture
def model_server() -> str:
    """host:port of the stack's model server (gRPC); skipped / failed like the stack."""
    host, port = MODEL_SERVER
    if not _port_open(host, port):
        missing(f"model server is not up on {host}:{port} - run `maskwatch stack up`")
    return f"{host}:{port}"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """../shared (real data, offline weights); env MASKWATCH_SHARED_DIR overrides the path."""
    path = Path(os.environ.get("MASKWATCH_SHARED_DIR", REPO_ROOT.parent / "shared"))
    if not path.is_dir():
        missing(f"shared data folder {path} not found (it sits beside the repository)")
    return path


def pytest_report_header(config: pytest.Config) -> str:
    kafka = "up" if _port_open("127.0.0.1", 9092) else "down"
    redis = "up" if _redis_answers() else "down"
    serve = "up" if _port_open(*MODEL_SERVER) else "down"
    return f"local stack: kafka {kafka}, redis {redis}, model server {serve}; CI={IN_CI}"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Container-image tests run last: under CI their images build in the background while the
    rest of the suite runs (deploy/local/test.sh), so they wait as little as possible."""
    items.sort(key=lambda item: item.get_closest_marker("images") is not None)
