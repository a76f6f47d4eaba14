"""`maskwatch results tail|export` against the real broker: time ranges, filters, formats,
undecodable records reported, and no consumer group ever created (read-only)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from consumers.results import cli
from runtime.kafka import KafkaSettings, make_producer
from schemas.common import decode, encode
from schemas.result import SUPPORTED_RESULT_VERSIONS, FrameResult
from tests.conftest import REPO_ROOT
from tests.consumers.groups import groups_with_offsets_on
from workers.aggregator.synthetic import result

pytestmark = pytest.mark.integration
HOUR_MS = 3_600_000


def publish(settings: KafkaSettings, items: list[tuple[str, bytes, int]]) -> None:
    """(key, value, record timestamp ms) onto the results topic, acknowledged."""
    producer = make_producer(settings, "test-results")
    for key, value, at_ms in items:
        producer.send(settings.results_topic, key=key.encode(), value=value, timestamp_ms=at_ms)
    producer.flush(timeout=30)
    producer.close()


def three_hours(settings: KafkaSettings, now_ms: int) -> None:
    """cam-a and cam-b, 5 results each published 2 h ago, 1 h ago (plus a duplicate and an
    undecodable record) and now (cam-a only)."""
    items = []
    for hour, seqs in ((2, range(5)), (1, range(5, 10))):
        at_ms = now_ms - hour * HOUR_MS
        for seq in seqs:
            for camera in ("cam-a", "cam-b"):
                captured = datetime.fromtimestamp(at_ms / 1000, UTC)
                items.append((camera, encode(result(camera, seq, captured, masked=1)), at_ms))
    items.append(items[-1])  # at-least-once: cam-b seq 9 twice
    items.append(("cam-a", b"not json", now_ms - HOUR_MS))
    captured_now = datetime.fromtimestamp(now_ms / 1000, UTC)
    items += [("cam-a", encode(result("cam-a", s, captured_now)), now_ms) for s in range(10, 15)]
    publish(settings, items)


def kafka_args(settings: KafkaSettings) -> list[str]:
    return ["--bootstrap-servers", settings.bootstrap_servers, "--results-topic",
            settings.results_topic]  # fmt: skip


def test_export_a_time_range_in_every_format(kafka_settings: KafkaSettings, tmp_path: Path) -> None:
    now_ms = int(time.time() * 1000)
    three_hours(kafka_settings, now_ms)
    window = ["--start", "90m", "--end", "30m"]
    runner = CliRunner()

    jsonl = runner.invoke(cli, ["export", *kafka_args(kafka_settings), *window])
    assert jsonl.exit_code == 0, jsonl.output
    lines = jsonl.stdout.splitlines()
    decoded = [decode(FrameResult, line.encode(), SUPPORTED_RESULT_VERSIONS) for line in lines]
    assert len(decoded) == 11  # ten in the hour, one duplicate delivered twice
    assert {(r.camera_id, r.seq) for r in decoded} == {
        (c, s) for c in ("cam-a", "cam-b") for s in range(5, 10)
    }
    assert "undecodable (invalid_message)" in jsonl.stderr
    assert "exported 11 results to stdout" in jsonl.stderr

    out = tmp_path / "b.csv"
    start = datetime.fromtimestamp((now_ms - 3 * HOUR_MS) / 1000, UTC).isoformat()
    args = ["--start", start, "--camera", "cam-b", "--output", "csv", "--out", str(out)]
    csv_run = runner.invoke(cli, ["export", *kafka_args(kafka_settings), *args])
    assert csv_run.exit_code == 0, csv_run.output
    rows = out.read_text().splitlines()
    assert len(rows) == 1 + 11 and rows[0].startswith("camera_id,seq,")
    assert all(row.startswith("cam-b,") for row in rows[1:])

    parquet = tmp_path / "r.parquet"
    args = [*window, "--output", "parquet", "--out", str(parquet)]
    pq_run = runner.invoke(cli, ["export", *kafka_args(kafka_settings), *args])
    assert pq_run.exit_code == 0, pq_run.output
    table = pq.read_table(parquet)
    assert table.num_rows == 11
    assert sorted(set(table.column("seq").to_pylist())) == list(range(5, 10))

    assert not groups_with_offsets_on(kafka_settings), "an export must not create a consumer group"


def test_export_needs_a_file_for_parquet(kafka_settings: KafkaSettings) -> None:
    args = ["export", *kafka_args(kafka_settings), "--start", "1h", "--output", "parquet"]
    run = CliRunner().invoke(cli, args)
    assert run.exit_code == 2
    assert "output parquet needs out" in run.output


def tail(settings: KafkaSettings, *args: str) -> subprocess.Popen[str]:
    command = "from workers.cli import main; main()"
    return subprocess.Popen(
        [sys.executable, "-c", command, "results", "tail", *kafka_args(settings), *args],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_tail_since_a_time_with_a_camera_filter(kafka_settings: KafkaSettings) -> None:
    three_hours(kafka_settings, int(time.time() * 1000))
    process = tail(kafka_settings, "--since", "3h", "--camera", "cam-b", "--limit", "11")
    try:
        stdout, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 0, stderr
    seqs = [int(line.split(" seq=")[1].split()[0]) for line in stdout.splitlines()]
    assert all(" cam-b seq=" in line for line in stdout.splitlines())
    assert seqs == [*range(10), 9]  # one partition per camera: in publish order, duplicate last


def test_tail_follows_new_results_as_json_lines(kafka_settings: KafkaSettings) -> None:
    process = tail(kafka_settings, "--camera", "cam-b", "--output", "json", "--limit", "3")
    seq = 0
    deadline = time.monotonic() + 60
    while process.poll() is None and time.monotonic() < deadline:
        now = datetime.now(UTC)
        publish(
            kafka_settings,
            [(c, encode(result(c, seq, now, masked=2)), int(now.timestamp() * 1000))
             for c in ("cam-a", "cam-b")],
        )  # fmt: skip
        seq += 1
        time.sleep(0.2)
    try:
        stdout, stderr = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 0, stderr
    shown = [json.loads(line) for line in stdout.splitlines()]
    assert len(shown) == 3
    assert {r["camera_id"] for r in shown} == {"cam-b"}
    assert [r["seq"] for r in shown] == sorted(r["seq"] for r in shown)
    assert all(r["counts"]["with_mask"] == 2 for r in shown)
