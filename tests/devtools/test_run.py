"""`maskwatch run` end to end on the real stack: two folder cameras → … → Redis and the API.

The run streams for ~25 s, then drains Kafka and stops; the test then checks the per-camera
counters the aggregator wrote against the frames the producer wrote (each counted once) and
the faces of their results.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from runtime.kafka import KafkaSettings
from schemas.common import decode
from schemas.frame import parse_frame_headers
from schemas.redis_state import Keys, counters_of
from schemas.result import SUPPORTED_RESULT_VERSIONS, FrameResult
from tests.recovery import read_to_end, records_to_end

REPO = Path(__file__).resolve().parents[2]
CAMERAS = ("it-cam-a", "it-cam-b")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def frames_produced(kafka: KafkaSettings) -> set[tuple[str, int]]:
    """(camera, seq) of every frame the run's producer wrote (read from the frame headers)."""
    records = records_to_end(kafka, kafka.frames_topic, 3)
    return {(m.camera_id, m.seq) for m in (parse_frame_headers(r.headers) for r in records)}


def results_answered(kafka: KafkaSettings) -> dict[tuple[str, int], FrameResult]:
    """The results topic by (camera, seq): a redelivered frame's repeats are the same frame."""
    values = read_to_end(kafka, kafka.results_topic, 3)
    results = [decode(FrameResult, v, SUPPORTED_RESULT_VERSIONS) for v in values]
    return {(r.camera_id, r.seq): r for r in results}


@pytest.mark.integration
def test_run_counts_every_frame_once(
    tmp_path: Path,
    kafka_settings: KafkaSettings,
    redis_client: redis.Redis,
    redis_prefix: str,
    unique_name: str,
    model_server: str,
    shared_dir: Path,
) -> None:
    images = shared_dir / "data" / "crowd" / "images"
    cameras = tmp_path / "cameras.yaml"
    cameras.write_text(
        "defaults: {fps: 0.5, loop: true}\ncameras:\n"
        + "".join(
            f"  - {{id: {c}, source: 'folder:{images}', slice: '{i * 5}:{i * 5 + 5}'}}\n"
            for i, c in enumerate(CAMERAS)
        )
    )
    api_port = free_port()
    env = {
        **os.environ,
        "MASKWATCH_KAFKA_FRAMES_TOPIC": kafka_settings.frames_topic,
        "MASKWATCH_KAFKA_RESULTS_TOPIC": kafka_settings.results_topic,
        "MASKWATCH_KAFKA_DEAD_LETTER_TOPIC": kafka_settings.dead_letter_topic,
        "MASKWATCH_KAFKA_ALERTS_TOPIC": kafka_settings.alerts_topic,
        "MASKWATCH_DETECTOR_GROUP_ID": f"{unique_name}-detectors",
        "MASKWATCH_DETECTOR_MODEL_SERVER": model_server,
        "MASKWATCH_DETECTOR_DETECTOR__MODEL_PATH": str(shared_dir / "models" / "centerface.onnx"),
        "MASKWATCH_AGGREGATOR_GROUP_ID": f"{unique_name}-aggregator",
    }
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "from workers.cli import main; main()",
            "run",
            "--cameras",
            str(cameras),
            "--duration-s",
            "25",
            "--api-port",
            str(api_port),
            "--key-prefix",
            redis_prefix,
            "--log-dir",
            str(tmp_path / "logs"),
            "--report-every-s",
            "10",
            "--drain-timeout-s",
            "180",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert f"dashboard: http://127.0.0.1:{api_port}/" in done.stdout
    assert "run: drained" in done.stdout, done.stdout[-3000:]

    keys = Keys(redis_prefix)
    text = redis.Redis(host="127.0.0.1", port=6379, decode_responses=True)
    registered = set(text.zrange(keys.registry, 0, -1))
    assert registered == set(CAMERAS)
    # the run's producer registered its cameras (camera health) under the run's prefix
    assert set(text.zrange(keys.configured, 0, -1)) == set(CAMERAS)
    produced = frames_produced(kafka_settings)
    answered = results_answered(kafka_settings)
    assert set(answered) == produced, "a frame produced without a result, or the reverse"
    assert read_to_end(kafka_settings, kafka_settings.dead_letter_topic, 3) == []
    for camera in CAMERAS:
        raw = text.hgetall(keys.camera_totals(camera))
        counts = counters_of({str(k): str(v) for k, v in raw.items()})
        mine = [r for (c, _), r in answered.items() if c == camera]
        assert counts.frames == sum(1 for c, _ in produced if c == camera) > 0, (camera, counts)
        assert counts.faces == sum(r.counts.faces for r in mine), (camera, counts)
        assert counts.with_mask == sum(r.counts.with_mask for r in mine), (camera, counts)
        assert counts.skipped == sum(r.status == "skipped" for r in mine), (camera, counts)
        assert camera in done.stdout  # the final summary lists it
    text.close()
