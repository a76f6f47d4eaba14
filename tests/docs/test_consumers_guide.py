"""The runnable blocks of docs/CONSUMERS.md (marked `<!-- tested: NAME -->`) work against the
real broker as written: the console-consumer one-liner with jq, and the Python consumer."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from runtime.kafka import KafkaSettings, make_admin, make_producer
from schemas.common import encode
from tests.conftest import REPO_ROOT
from tests.consumers.groups import groups_with_offsets_on
from workers.aggregator.synthetic import stream

pytestmark = pytest.mark.integration
GUIDE = REPO_ROOT / "docs" / "CONSUMERS.md"
CAMERAS = ["cam-1", "cam-2"]
FRAMES = 10  # per camera; one in ten is skipped


def block(name: str) -> str:
    """The fenced block right after `<!-- tested: name -->`."""
    found = re.search(rf"<!-- tested: {name} -->\n```\w+\n(.*?)\n```", GUIDE.read_text(), re.S)
    assert found, f"no tested block {name!r} in {GUIDE}"
    return found.group(1)


def publish(settings: KafkaSettings) -> list[tuple[str, int, int, int]]:
    """Results (each sent twice) and one bad record; the processed ones' (camera, seq,
    with_mask, faces)."""
    results = stream(CAMERAS, FRAMES, time.time() - 60)
    producer = make_producer(settings, "test-consumers-guide")
    for r in [*results, *results]:
        producer.send(settings.results_topic, key=r.camera_id.encode(), value=encode(r))
    producer.send(settings.results_topic, key=b"cam-1", value=b'{"schema_version": 3}')
    producer.flush(timeout=30)
    producer.close()
    return [
        (r.camera_id, r.seq, r.counts.with_mask, r.counts.faces)
        for r in results
        if r.status == "processed"
    ]


def read_lines(command: list[str], env: dict[str, str], count: int, cwd: Path) -> list[str]:
    """The first `count` stdout lines of a command that runs until stopped (then stopped)."""
    process = subprocess.Popen(
        command, env=env, cwd=cwd, stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    lines: list[str] = []
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 120
        while len(lines) < count and time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line.rstrip("\n"))
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    return lines


def test_console_consumer_one_liner(kafka_settings: KafkaSettings, tmp_path: Path) -> None:
    processed = publish(kafka_settings)
    env = {**os.environ, "MASKWATCH_KAFKA_RESULTS_TOPIC": kafka_settings.results_topic}
    lines = read_lines(["bash", "-c", block("console")], env, 2 * len(processed), tmp_path)
    rows = [line.split("\t") for line in lines]
    assert len(rows) == 2 * len(processed)  # duplicates too: the one-liner does not dedupe
    assert {(c, int(s), int(w), int(f)) for _, c, s, f, w in rows} == set(processed)
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT[\d:.]+Z", row[0]) for row in rows)
    assert not groups_with_offsets_on(kafka_settings), "the one-liner must commit nothing"


def test_python_consumer(kafka_settings: KafkaSettings, unique_name: str, tmp_path: Path) -> None:
    processed = publish(kafka_settings)
    script = tmp_path / "consumer.py"
    script.write_text(block("python").replace("my-team-compliance", f"test-{unique_name}"))
    env = {
        **os.environ,
        "MASKWATCH_KAFKA_RESULTS_TOPIC": kafka_settings.results_topic,
        "PYTHONPATH": str(REPO_ROOT),
    }
    lines = read_lines([sys.executable, str(script)], env, len(processed) + 1, tmp_path)
    printed = [line for line in lines if not line.startswith("rejected")]
    assert sorted(tuple(line.split()) for line in printed) == sorted(
        (c, str(s), str(w), str(f)) for c, s, w, f in processed
    )  # each result once although every one was delivered twice
    assert [line.split(": ")[1] for line in lines if line.startswith("rejected")] == [
        "unsupported_schema_version"
    ]
    group = f"test-{unique_name}"
    assert groups_with_offsets_on(kafka_settings) == {group}  # it commits, in its own group
    admin = make_admin(kafka_settings)
    admin.delete_groups([group])
    admin.close()
