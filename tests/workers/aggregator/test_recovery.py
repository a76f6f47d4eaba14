"""Exact recovery of the aggregator after `kill -9`, with one and with two members in the group.

The victim is frozen (SIGSTOP) at a moment where Redis already holds results whose offsets
the broker has not committed, then killed with SIGKILL. From the broker's committed offsets
at that moment the test knows exactly what the group must re-read: every record from the
committed offset on, of the victim's partitions. The survivor's own counters must show that
it consumed exactly those (plus, with two members, its own partitions once), that the
duplicates it skipped are exactly the re-read records already applied, and Redis must hold
each result once.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from runtime.kafka import KafkaSettings, make_producer
from schemas.common import encode
from schemas.redis_state import Keys, dedupe_slot
from schemas.result import FrameResult
from tests.recovery import (
    Place,
    committed_offsets,
    end_offsets,
    free_port,
    freeze_holding,
    kill_9,
    metric,
    metrics_of,
    stable_assignment,
    start_stage,
    stop_stage,
    wait_for,
)
from tests.workers.aggregator.test_service import expected, totals
from workers.aggregator.synthetic import stream

pytestmark = pytest.mark.integration
PARTITIONS = 3


class Aggregator:
    """A `maskwatch aggregator` process with its own client id, health port and log."""

    def __init__(self, env: dict[str, str], name: str, log_dir: Path) -> None:
        self.name, self.port = name, free_port()
        self.log = log_dir / f"{name}.log"
        env = {
            **env,
            "MASKWATCH_AGGREGATOR_CLIENT_ID": name,
            "MASKWATCH_AGGREGATOR_RUNTIME__HEALTH_PORT": str(self.port),
        }
        self.process = start_stage("aggregator", env, self.log)

    def counted(self, outcome: str) -> int:
        text = metrics_of(self.port)
        return int(metric(text, "maskwatch_aggregator_results_total", f'outcome="{outcome}"'))

    def stop(self) -> int:
        return stop_stage(self.process, 30)


@pytest.fixture
def aggregators(
    kafka_settings: KafkaSettings, redis_prefix: str, unique_name: str, tmp_path: Path
) -> Iterator[Callable[[str], Aggregator]]:
    env = {
        **os.environ,
        "MASKWATCH_KAFKA_RESULTS_TOPIC": kafka_settings.results_topic,
        "MASKWATCH_KAFKA_DEAD_LETTER_TOPIC": kafka_settings.dead_letter_topic,
        "MASKWATCH_KAFKA_ALERTS_TOPIC": kafka_settings.alerts_topic,
        "MASKWATCH_AGGREGATOR_KEY_PREFIX": redis_prefix,
        "MASKWATCH_AGGREGATOR_GROUP_ID": f"agg-{unique_name}",
        "MASKWATCH_AGGREGATOR_MAX_BATCH": "10",  # many short batches: many points to stop at
    }
    started: list[Aggregator] = []

    def start(name: str) -> Aggregator:
        started.append(Aggregator(env, name, tmp_path))
        return started[-1]

    yield start
    for aggregator in started:
        aggregator.stop()


def publish_placed(kafka: KafkaSettings, results: list[FrameResult]) -> list[Place]:
    """Publish results spread over the partitions by camera; where each one landed."""
    producer = make_producer(kafka, "test-results")
    cameras = sorted({r.camera_id for r in results})
    futures = [
        producer.send(
            kafka.results_topic,
            key=r.camera_id.encode(),
            value=encode(r),
            partition=cameras.index(r.camera_id) % PARTITIONS,
        )
        for r in results
    ]
    producer.flush()
    places = [Place(m.partition, m.offset) for m in (f.get(timeout=30) for f in futures)]
    producer.close()
    return places


def applied_flags(client: redis.Redis, prefix: str, results: list[FrameResult]) -> list[bool]:
    """Whether each result's dedupe entry is in Redis (the apply script sets it first)."""
    keys = Keys(prefix)
    pipe = client.pipeline(transaction=False)
    for r in results:
        block, field = dedupe_slot(r.captured_at, r.seq)
        pipe.hexists(keys.seen(r.camera_id, block), str(field))
    return [bool(flag) for flag in pipe.execute()]


@pytest.mark.parametrize("members", [1, 2])
def test_kill_9_replays_exactly_from_the_committed_offsets(
    members: int,
    kafka_settings: KafkaSettings,
    redis_client: redis.Redis,
    redis_prefix: str,
    unique_name: str,
    aggregators: Callable[[str], Aggregator],
) -> None:
    topic, group = kafka_settings.results_topic, f"agg-{unique_name}"
    victim = aggregators("victim")
    peer = aggregators("peer") if members == 2 else None
    names = ["victim"] + (["peer"] if peer else [])
    owned = stable_assignment(kafka_settings, group, names, 90)["victim"]
    results = stream([f"r-{i}" for i in range(6)], 300, time.time() - 600, fps=5)
    os.kill(victim.process.pid, signal.SIGSTOP)  # all records in before it applies any
    places = publish_placed(kafka_settings, results)
    mine = [i for i, place in enumerate(places) if place.partition in owned]

    at_kill: dict[str, object] = {}

    def holding() -> bool:
        committed = committed_offsets(kafka_settings, group, topic)
        flags = applied_flags(redis_client, redis_prefix, [results[i] for i in mine])
        past = [committed.get(places[i].partition, 0) <= places[i].offset for i in mine]
        at_kill.update(
            committed=committed,
            held=[i for i, f, p in zip(mine, flags, past, strict=True) if f and p],
            unapplied_committed=[
                i for i, f, p in zip(mine, flags, past, strict=True) if not (f or p)
            ],
            reread=[i for i, p in zip(mine, past, strict=True) if p],
        )
        return bool(at_kill["held"])

    freeze_holding(victim.process, holding, timeout_s=90)
    kill_9(victim.process)
    committed = at_kill["committed"]
    assert isinstance(committed, dict)
    now_committed = committed_offsets(kafka_settings, group, topic)
    assert {p: now_committed.get(p) for p in owned} == {p: committed.get(p) for p in owned}
    assert at_kill["unapplied_committed"] == [], "committed offsets of results not applied"
    held, reread = at_kill["held"], at_kill["reread"]
    assert isinstance(held, list) and isinstance(reread, list)
    assert held, "the kill must land while the victim holds applied, uncommitted results"

    survivor = peer or aggregators("survivor")
    ends = end_offsets(kafka_settings, topic, PARTITIONS)
    wait_for(
        lambda: committed_offsets(kafka_settings, group, topic) == ends,
        120,
        "the survivor to commit every partition",
    )
    assert totals(redis_client, redis_prefix) == expected(results)
    for camera in sorted({r.camera_id for r in results}):
        assert totals(redis_client, redis_prefix, camera) == expected(
            [r for r in results if r.camera_id == camera]
        )
    assert all(applied_flags(redis_client, redis_prefix, results))
    own_records = len(results) - len(mine) if peer else 0
    assert survivor.counted("duplicate") == len(held)
    assert survivor.counted("applied") + survivor.counted("duplicate") == own_records + len(reread)
    assert survivor.counted("dead_letter") == 0
    assert survivor.stop() == 0, survivor.log.read_text()[-2000:]


def test_sigterm_mid_stream_commits_exactly_what_it_applied(
    kafka_settings: KafkaSettings,
    redis_client: redis.Redis,
    redis_prefix: str,
    unique_name: str,
    aggregators: Callable[[str], Aggregator],
) -> None:
    """A drain under load: SIGTERM lands (held back by SIGSTOP until then) mid-stream; the
    aggregator finishes its batch and exits 0, and the broker's committed offsets are exactly
    the applied results — so a successor re-reads none of them and misses none."""
    topic, group = kafka_settings.results_topic, f"agg-{unique_name}"
    first = aggregators("first")
    stable_assignment(kafka_settings, group, ["first"], 90)
    results = stream([f"d-{i}" for i in range(6)], 300, time.time() - 600, fps=5)
    os.kill(first.process.pid, signal.SIGSTOP)  # all records in before it applies any
    places = publish_placed(kafka_settings, results)

    def mid_stream() -> bool:
        flags = applied_flags(redis_client, redis_prefix, results)
        return any(flags) and not all(flags)

    freeze_holding(first.process, mid_stream, timeout_s=90)
    first.process.send_signal(signal.SIGTERM)  # handled once it runs again
    os.kill(first.process.pid, signal.SIGCONT)
    assert first.process.wait(timeout=60) == 0, first.log.read_text()[-2000:]
    committed = committed_offsets(kafka_settings, group, topic)
    flags = applied_flags(redis_client, redis_prefix, results)
    assert flags == [p.offset < committed.get(p.partition, 0) for p in places]
    assert not all(flags), "the drain must leave work for the successor"

    second = aggregators("second")
    ends = end_offsets(kafka_settings, topic, PARTITIONS)
    wait_for(
        lambda: committed_offsets(kafka_settings, group, topic) == ends,
        120,
        "the successor to commit every partition",
    )
    assert second.counted("duplicate") == 0
    assert second.counted("applied") == flags.count(False)
    assert totals(redis_client, redis_prefix) == expected(results)
    assert second.stop() == 0, second.log.read_text()[-2000:]
