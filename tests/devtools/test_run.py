"""`maskwatch run` end to end on the real stack: two folder cameras → … → Redis and the API.

The run streams for ~25 s, then drains Kafka and stops; the test then reads the per-camera
counters the aggregator wrote and checks them against the results topic itself.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import redis
from kafka import KafkaConsumer, TopicPartition

from runtime.kafka import KafkaSettings
from schemas.common import decode
from schemas.redis_state import Keys, counters_of
from schemas.result import SUPPORTED_RESULT_VERSIONS, FrameResult

REPO = Path(__file__).resolve().parents[2]
CAMERAS = ("it-cam-a", "it-cam-b")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def results_per_camera(kafka: KafkaSettings) -> Counter[str]:
    """Every result in the run's results topic, counted per camera."""
    consumer = KafkaConsumer(
        bootstrap_servers=kafka.bootstrap_servers.split(","), enable_auto_commit=False
    )
    try:
        partitions = [
            TopicPartition(kafka.results_topic, p)
            for p in consumer.partitions_for_topic(kafka.results_topic) or ()
        ]
        consumer.assign(partitions)
        consumer.seek_to_beginning()
        ends = consumer.end_offsets(partitions)
        counts: Counter[str] = Counter()
        while any(consumer.position(tp) < ends[tp] for tp in partitions):
            for records in consumer.poll(timeout_ms=1000).values():
                for record in records:
                    result = decode(FrameResult, record.value, SUPPORTED_RESULT_VERSIONS)
                    counts[result.camera_id] += 1
        return counts
    finally:
        consumer.close()


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
        "MASKWATCH_DETECTOR_DETECTOR__MODEL_PATH": str(
            shared_dir / "models" / "retinaface_mnet025.onnx"
        ),
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
    in_topic = results_per_camera(kafka_settings)
    for camera in CAMERAS:
        raw = text.hgetall(keys.camera_totals(camera))
        counts = counters_of({str(k): str(v) for k, v in raw.items()})
        assert counts.frames > 0, camera
        assert counts.faces == counts.with_mask + counts.without_mask, (camera, counts)
        assert counts.frames == in_topic[camera], (camera, counts, in_topic)
        assert camera in done.stdout  # the final summary lists it
    text.close()
