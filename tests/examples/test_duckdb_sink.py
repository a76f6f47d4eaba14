"""examples/duckdb_sink against the real broker and Redis: killed with SIGKILL mid-stream and
restarted, its table equals the distinct results and its stored offsets the partitions' ends;
its 24 h query reproduces what the aggregator writes to Redis for the same records."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import duckdb
import pytest
import redis
from kafka import KafkaConsumer, TopicPartition

from examples.duckdb_sink.sink import figures_24h
from runtime.kafka import KafkaSettings, make_producer
from schemas.common import encode
from schemas.redis_state import WINDOWS, Keys, sum_counters
from schemas.result import FrameResult
from tests.conftest import REPO_ROOT
from workers.aggregator.core import Aggregator
from workers.aggregator.settings import AggregatorSettings
from workers.aggregator.synthetic import stream

pytestmark = pytest.mark.integration
CAMERAS = ["cam-1", "cam-2", "cam-3", "cam-4", "cam-5"]
PER_CAMERA = 400
SPAN_S = 25 * 3600  # across the 24 h window's edge: the oldest results fall outside it


def results_now(now: float) -> list[FrameResult]:
    return stream(CAMERAS, PER_CAMERA, now - SPAN_S - 1800, fps=PER_CAMERA / SPAN_S)


def publish(settings: KafkaSettings, results: list[FrameResult]) -> list[bytes]:
    """Every result, then every 7th again (at-least-once), then two undecodable records."""
    values = [encode(r) for r in results]
    values += values[::7]
    producer = make_producer(settings, "test-duckdb-sink")
    for value in values:
        camera = json.loads(value)["camera_id"]
        producer.send(settings.results_topic, key=camera.encode(), value=value)
    for junk in (b"not json", b'{"schema_version": 2, "camera_id": "cam-1"}'):
        producer.send(settings.results_topic, key=b"cam-1", value=junk)
    producer.flush(timeout=60)
    producer.close()
    return values


def sink(settings: KafkaSettings, db: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "examples.duckdb_sink.sink", "consume", "--db", str(db),
         "--bootstrap-servers", settings.bootstrap_servers, "--topic", settings.results_topic,
         "--batch-max", "25", *extra],
        cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def lines(process: subprocess.Popen[str]) -> Iterator[dict[str, Any]]:
    assert process.stdout is not None
    for line in process.stdout:
        yield json.loads(line)


def end_offsets(settings: KafkaSettings) -> dict[int, int]:
    consumer = KafkaConsumer(bootstrap_servers=settings.bootstrap_servers, group_id=None)
    try:
        tps = [TopicPartition(settings.results_topic, p) for p in range(3)]
        return {tp.partition: offset for tp, offset in consumer.end_offsets(tps).items()}
    finally:
        consumer.close()


def table(db: Path) -> tuple[dict[tuple[str, int], tuple[Any, ...]], dict[int, int], int]:
    """(camera, seq) → counts, stored next offsets, rejected count; checks rows vs offsets."""
    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.execute(
            "SELECT camera_id, seq, status, faces, with_mask, without_mask, kafka_partition, "
            "kafka_offset FROM results"
        ).fetchall()
        offsets = dict(
            con.execute("SELECT kafka_partition, next_offset FROM kafka_offsets").fetchall()
        )
        rejected = con.execute("SELECT count(*) FROM rejected").fetchone()
    for *_, partition, offset in rows:
        assert offset < offsets[partition], "a row past its partition's stored offset"
    return {(r[0], r[1]): r[2:6] for r in rows}, offsets, int(rejected[0]) if rejected else 0


def expected(results: list[FrameResult]) -> dict[tuple[str, int], tuple[Any, ...]]:
    return {
        (r.camera_id, r.seq): (r.status, r.counts.faces, r.counts.with_mask, r.counts.without_mask)
        for r in results
    }


def test_killed_and_restarted_sink_holds_each_result_once(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    results = results_now(time.time())
    values = publish(kafka_settings, results)
    db = tmp_path / "results.duckdb"

    first = sink(kafka_settings, db)
    try:
        commits = 0
        for event in lines(first):
            commits += "records" in event
            if commits == 4:
                break
    finally:
        first.kill()  # SIGKILL: no clean-up, maybe mid-transaction
        first.wait(timeout=30)
    stored, offsets, _ = table(db)
    assert 0 < len(stored) < len(results), "the kill did not land mid-stream"

    second = sink(kafka_settings, db, "--exit-at-end")
    events = list(lines(second))
    assert second.wait(timeout=120) == 0, second.stderr.read() if second.stderr else ""
    assert events[0] == {"resume": {str(p): o for p, o in sorted(offsets.items())}}
    assert events[-1]["done"] is True

    stored, offsets, rejected = table(db)
    assert stored == expected(results)  # distinct results, each once, counts intact
    assert offsets == end_offsets(kafka_settings)
    assert sum(offsets.values()) == len(values) + 2
    assert rejected == 2


def test_24h_query_reproduces_the_aggregators_figures(
    kafka_settings: KafkaSettings, redis_prefix: str, tmp_path: Path
) -> None:
    now = time.time()
    publish(kafka_settings, results_now(now))
    db = tmp_path / "results.duckdb"
    run = sink(kafka_settings, db, "--exit-at-end")
    assert run.wait(timeout=120) == 0

    client = redis.Redis(host="127.0.0.1", port=6379, decode_responses=True)
    aggregator = Aggregator(AggregatorSettings(key_prefix=redis_prefix), client, lambda _: None)
    reader = KafkaConsumer(
        bootstrap_servers=kafka_settings.bootstrap_servers,
        group_id=None,
        auto_offset_reset="earliest",
    )
    tps = [TopicPartition(kafka_settings.results_topic, p) for p in range(3)]
    reader.assign(tps)
    reader.seek_to_beginning(*tps)
    ends = reader.end_offsets(tps)
    while any(reader.position(tp) < end for tp, end in ends.items()):
        for records in reader.poll(timeout_ms=1000, max_records=500).values():
            aggregator.handle(records, now)
    reader.close()

    keys = Keys(redis_prefix)
    window = WINDOWS["24h"]
    with duckdb.connect(str(db), read_only=True) as con:
        figures = {f["camera_id"]: f for f in figures_24h(con, datetime.fromtimestamp(now, UTC))}
    assert sorted(figures) == CAMERAS
    for camera in CAMERAS:
        buckets = [
            cast(dict[str, str], client.hgetall(k)) for k in keys.window(camera, window, now)
        ]
        redis_counts = sum_counters(buckets)
        ours = figures[camera]
        assert (ours["frames"], ours["skipped"], ours["faces"], ours["with_mask"]) == (
            redis_counts.frames,
            redis_counts.skipped,
            redis_counts.faces,
            redis_counts.with_mask,
        )
        assert ours["compliance"] == pytest.approx(redis_counts.compliance)
        assert 0 < ours["frames"] < PER_CAMERA  # the window cut the oldest hour off
    client.close()
