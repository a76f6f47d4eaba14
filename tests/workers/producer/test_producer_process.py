"""`maskwatch producer` as a real process: bad config, SIGTERM flush, restart continuity."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from runtime.kafka import KafkaSettings
from schemas.frame import parse_frame_headers
from tests.workers.producer.conftest import RunProducer, free_port, read_frames, wait_until
from workers.producer.config import CameraConfig
from workers.producer.main import cli


def test_bad_config_fails_at_start_with_a_readable_message(tmp_path: Path) -> None:
    config = tmp_path / "cameras.yaml"
    config.write_text("cameras:\n  - {id: cam-1, source: a.mp4, fps: 500}\n")
    result = CliRunner().invoke(cli, ["--config", str(config), "--runtime-health-port", "0"])
    assert result.exit_code == 1
    assert "cameras.0.fps" in result.output and "less than or equal to 60" in result.output


def test_cameras_from_the_environment_are_validated_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MASKWATCH_PRODUCER_CAMERAS_YAML", "cameras: [{id: c, source: x, fsp: 2}]")
    result = CliRunner().invoke(cli, ["--runtime-health-port", "0"])
    assert result.exit_code == 1
    assert "MASKWATCH_PRODUCER_CAMERAS_YAML is invalid" in result.output
    assert "cameras.0.fsp: Extra inputs are not permitted" in result.output


def test_bad_settings_fail_at_start(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["--config", str(tmp_path), "--replica-count", "0"])
    assert result.exit_code != 0
    assert "MASKWATCH_PRODUCER_REPLICA_COUNT" in result.output


def frames_per_camera(kafka: KafkaSettings) -> dict[bytes, int]:
    counts: dict[bytes, int] = {}
    for record in read_frames(kafka, kafka.frames_topic):
        counts[record.key] = counts.get(record.key, 0) + 1
    return counts


def run_process(config: Path, kafka: KafkaSettings, new_frames: int) -> dict[str, Any]:
    """Run the producer until every camera has `new_frames` more frames in the topic, then
    SIGTERM it (mid-stream: frames are still being encoded); its producer_stopped fields."""
    before = frames_per_camera(kafka)
    cameras = (b"fast-a", b"fast-b")
    env = {
        **os.environ,
        "MASKWATCH_KAFKA_FRAMES_TOPIC": kafka.frames_topic,
        "MASKWATCH_PRODUCER_RUNTIME__HEALTH_PORT": "0",
    }
    log = config.with_suffix(".log")
    with log.open("w") as stderr_file:  # a file, not a pipe: a full pipe would block the logger
        process = subprocess.Popen(
            [sys.executable, "-c", "from workers.cli import main; main()", "producer",
             "--config", str(config)],
            env=env, stderr=stderr_file, stdout=subprocess.DEVNULL, text=True,
        )  # fmt: skip
    wait_until(
        lambda: (
            process.poll() is not None
            or all(
                frames_per_camera(kafka).get(c, 0) >= before.get(c, 0) + new_frames for c in cameras
            )
        ),
        120,
        f"{new_frames} new frames from each camera",
    )
    assert process.poll() is None, log.read_text()[-2000:]
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=30)
    stderr = log.read_text()
    assert process.returncode == 0, stderr[-2000:]
    events = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    closed = next(e for e in events if e["event"] == "sender_closed")
    assert closed["lost_in_buffer"] == 0
    return dict(next(e for e in events if e["event"] == "producer_stopped")["cameras"])


@pytest.mark.integration
def test_sigterm_flushes_every_frame_and_restart_continues_sequences(
    crowd_images: Path, kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    config = tmp_path / "cameras.yaml"
    config.write_text(
        "defaults: {fps: 10, max_resolution_wh: [640, 480]}\n"
        "cameras:\n"
        f"  - {{id: fast-a, source: 'folder:{crowd_images}', slice: '0:40'}}\n"
        f"  - {{id: fast-b, source: 'folder:{crowd_images}', slice: '40:80'}}\n"
    )
    first = run_process(config, kafka_settings, new_frames=10)
    first_records = read_frames(kafka_settings, kafka_settings.frames_topic)
    second = run_process(config, kafka_settings, new_frames=3)
    records = read_frames(kafka_settings, kafka_settings.frames_topic)

    for camera in ("fast-a", "fast-b"):
        # everything encoded before SIGTERM reached Kafka, including the very last frame
        assert first[camera]["encoded"] >= 10
        assert first[camera]["sent"] == first[camera]["encoded"]
        assert first[camera]["dropped"] == 0
        seqs_1 = [
            parse_frame_headers(r.headers).seq for r in first_records if r.key == camera.encode()
        ]
        assert len(seqs_1) == first[camera]["encoded"]
        assert max(seqs_1) == first[camera]["last_seq"]
        # the restarted process continues above the old numbers, without any stored state
        seqs_2 = [parse_frame_headers(r.headers).seq for r in records if r.key == camera.encode()]
        new = seqs_2[len(seqs_1) :]
        assert len(new) == second[camera]["sent"] > 0
        assert min(new) > max(seqs_1)


def test_kafka_unreachable_drops_the_oldest_frames_and_memory_stays_bounded(
    tmp_path: Path, run_producer: RunProducer
) -> None:
    for i in range(3):
        cv2.imwrite(str(tmp_path / f"img{i}.jpg"), np.full((120, 160, 3), 40 * i, np.uint8))
    nowhere = KafkaSettings(bootstrap_servers=f"127.0.0.1:{free_port()}", frames_topic="t")
    camera = CameraConfig(id="cam-1", source=f"folder:{tmp_path}", fps=20)
    producer, metrics = run_producer([camera], nowhere, buffer_frames=5)
    wait_until(lambda: metrics.total("frames_dropped", "cam-1") >= 10, 20, "frames dropped")
    assert not producer.sender.connected.is_set()  # /readyz says not ready
    assert metrics.registry.get_sample_value("maskwatch_producer_buffered_frames") == 5
    assert metrics.total("frames_encoded", "cam-1") - metrics.total("frames_dropped", "cam-1") <= 5
    assert metrics.total("frames_sent", "cam-1") == 0
