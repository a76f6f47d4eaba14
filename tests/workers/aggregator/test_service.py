"""The aggregator service on the real Kafka and Redis: end to end, and a Redis outage
(crash recovery and drains: test_recovery.py)."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Sequence

import pytest
import redis
from redis import Redis

from runtime.kafka import KafkaSettings, make_producer
from runtime.service import ServiceRuntime
from runtime.settings import RuntimeSettings
from schemas.alert import SUPPORTED_ALERT_VERSIONS, AlertEvent
from schemas.common import decode, encode
from schemas.dead_letter import SUPPORTED_DEAD_LETTER_VERSIONS, DeadLetter
from schemas.redis_state import Keys
from schemas.result import FrameResult
from tests.recovery import free_port, read_to_end, wait_for
from workers.aggregator.core import Aggregator
from workers.aggregator.main import Service
from workers.aggregator.settings import AggregatorSettings
from workers.aggregator.synthetic import result, stream

pytestmark = pytest.mark.integration


def publish(kafka: KafkaSettings, values: list[bytes], keys: Sequence[bytes | None]) -> None:
    producer = make_producer(kafka, "test-results")
    for key, value in zip(keys, values, strict=True):
        producer.send(kafka.results_topic, key=key, value=value)
    producer.flush()
    producer.close()


def totals(client: redis.Redis, prefix: str, camera: str | None = None) -> dict[str, int]:
    keys = Keys(prefix)
    raw = client.hgetall(keys.camera_totals(camera) if camera else keys.totals)
    return {k if isinstance(k, str) else k.decode(): int(v) for k, v in raw.items()}


def expected(results: list[FrameResult]) -> dict[str, int]:
    processed = [r for r in results if r.status == "processed"]
    sums = {
        "frames": len(results),
        "skipped": len(results) - len(processed),
        "faces": sum(r.counts.faces for r in processed),
        "with_mask": sum(r.counts.with_mask for r in processed),
        "without_mask": sum(r.counts.without_mask for r in processed),
    }
    return {k: v for k, v in sums.items() if v}


def test_service_applies_results_dead_letters_junk_and_publishes_alerts(
    kafka_settings: KafkaSettings, redis_client: redis.Redis, redis_prefix: str, unique_name: str
) -> None:
    now = time.time()
    results = [result("cam-1", s, now - 3, masked=1, unmasked=2) for s in range(12)]
    results += stream(["cam-2"], 30, now - 6)
    values = [encode(r) for r in results] + [b"not a result"]
    publish(kafka_settings, values, [r.camera_id.encode() for r in results] + [b"cam-1"])

    settings = AggregatorSettings(
        key_prefix=redis_prefix,
        group_id=f"agg-{unique_name}",
        min_faces=20,
        alert_window="1m",
        compliance_below=0.5,
        runtime=RuntimeSettings(health_port=None),
        eval_interval_s=0.2,
    )
    runtime = ServiceRuntime("aggregator-test", None)
    service = Service(settings, kafka_settings, runtime)
    thread = threading.Thread(target=service.run, daemon=True)
    thread.start()
    try:
        wait_for(
            lambda: totals(redis_client, redis_prefix) == expected(results),
            30,
            "every result applied",
        )
    finally:
        runtime.stopping.set()
        thread.join(15)
    assert not thread.is_alive()
    # stopped (its producer flushed on close): the topics now hold all it ever published
    letters = read_to_end(kafka_settings, kafka_settings.dead_letter_topic, 3)
    alerts = read_to_end(kafka_settings, kafka_settings.alerts_topic, 3)
    dead = [decode(DeadLetter, v, SUPPORTED_DEAD_LETTER_VERSIONS) for v in letters]
    assert [(d.stage, d.reason.value, d.camera_id) for d in dead] == [
        ("aggregator", "invalid_message", "cam-1")
    ]
    events = [decode(AlertEvent, v, SUPPORTED_ALERT_VERSIONS) for v in alerts]
    assert [(e.camera_id, e.rule, e.state) for e in events] == [
        ("cam-1", "low_compliance", "firing")
    ]
    # and none is due now: a fresh evaluation of the same Redis state raises nothing more
    raised: list[AlertEvent] = []
    judge = Aggregator(
        settings, Redis.from_url(settings.redis_url, decode_responses=True), raised.append
    )
    assert judge.check_silence() == [] and judge.check_compliance(["cam-1", "cam-2"], now) == []
    assert raised == []


def start_redis(port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port)
    wait_for(lambda: _pings(client), 10, f"redis-server on {port}")
    return process


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


def test_a_redis_outage_holds_the_batch_until_redis_is_back(
    kafka_settings: KafkaSettings, unique_name: str
) -> None:
    port = free_port()
    server = start_redis(port)
    client = redis.Redis(port=port)
    settings = AggregatorSettings(
        redis_url=f"redis://127.0.0.1:{port}/0",
        key_prefix="o:",
        group_id=f"agg-{unique_name}",
        runtime=RuntimeSettings(health_port=None),
    )
    runtime = ServiceRuntime("aggregator-outage", None)
    service = Service(settings, kafka_settings, runtime)
    thread = threading.Thread(target=service.run, daemon=True)
    thread.start()
    now = time.time()
    try:
        before = [result("o-1", s, now - 5, masked=1) for s in range(20)]
        publish(kafka_settings, [encode(r) for r in before], [b"o-1"] * 20)
        wait_for(lambda: totals(client, "o:") == expected(before), 30, "the first results")

        server.terminate()
        server.wait(10)
        during = [result("o-1", s, now - 4, unmasked=1) for s in range(20, 50)]
        publish(kafka_settings, [encode(r) for r in during], [b"o-1"] * 30)
        wait_for(lambda: not runtime.health.ready[0], 30, "the service to report not ready")

        server = start_redis(port)  # an empty Redis: only what was held back can appear
        wait_for(lambda: totals(client, "o:") == expected(during), 30, "the held-back batch")
        wait_for(lambda: runtime.health.ready[0], 30, "the service to be ready again")
    finally:
        runtime.stopping.set()
        thread.join(15)
        server.terminate()
        server.wait(10)
