"""Hostile input never stops a stage: the adversarial suite on the real stack.

One `maskwatch detector` and one `maskwatch aggregator` run as real processes against the
stack's Kafka, Redis and model server. 200 valid frames (320x240, no faces: detected, never
classified, so the shared model server's speed does not matter) from 4 cameras are
interleaved with more than 1,000 hostile records of 58 kinds
(tests/workers/hostile_inputs.py) on the frames and results topics. Asserted: every valid
frame counted exactly once; every hostile record dead-lettered with its expected reason, by
topic/partition/offset, and nothing else dead-lettered; neither worker exits; each worker's
peak RSS stays within a stated margin of its warm baseline; and replaying the whole
results topic from offset 0 (a second aggregator group) changes no counter.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import redis
from kafka import KafkaConsumer, TopicPartition

from runtime.kafka import KafkaSettings, make_producer
from schemas.common import decode
from schemas.dead_letter import SUPPORTED_DEAD_LETTER_VERSIONS, DeadLetter
from schemas.frame import FrameMeta, frame_headers
from schemas.redis_state import Keys
from tests.recovery import committed_to_end, start_stage, stop_stage
from tests.workers.hostile_inputs import (
    HOSTILE_CAMERA,
    MAX_FACES,
    MAX_RESULT_BYTES,
    Hostile,
    frame_kinds,
    result_kinds,
)

pytestmark = pytest.mark.integration

CAMERAS = [f"cam-{i}" for i in range(4)]
FRAMES_PER_CAMERA = 50
WARM_FRAMES_PER_CAMERA = 5
COPIES = 18
"""Each hostile kind is sent this many times: 58 kinds x 18 = 1,044 hostile records."""
DETECTOR_RSS_MARGIN_MB = 150
AGGREGATOR_RSS_MARGIN_MB = 100
"""Peak RSS over the hostile phase may exceed the warm baseline by at most this much (a
decoded 12000x12000 bomb alone would add ~400 MiB; a parsed 10^6-face result ~1 GB)."""
STARTUP_S = 240.0
SETTLE_S = 240.0


def wait_until(condition: Callable[[], bool], what: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")
        time.sleep(0.5)


class Service:
    """A `maskwatch <stage>` process of this checkout, its log, and its sampled RSS."""

    def __init__(self, stage: str, env: dict[str, str], log: Path) -> None:
        self.log = log
        self.process = start_stage(stage, {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **env}, log)
        self.peak_mb = 0.0
        self._sampling = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def rss_mb(self) -> float:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        line = next(x for x in status.splitlines() if x.startswith("VmRSS:"))
        return int(line.split()[1]) / 1024

    def _sample(self) -> None:
        while self.process.poll() is None and not self._sampling.wait(0.1):
            try:
                self.peak_mb = max(self.peak_mb, self.rss_mb())
            except (OSError, StopIteration):
                return

    def reset_peak(self) -> float:
        """Start measuring the peak afresh; returns the current RSS (the baseline)."""
        self.peak_mb = baseline = self.rss_mb()
        return baseline

    def alive(self) -> bool:
        return self.process.poll() is None

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        self._sampling.set()
        stop_stage(self.process)


def topics_env(kafka: KafkaSettings) -> dict[str, str]:
    return {
        "MASKWATCH_KAFKA_FRAMES_TOPIC": kafka.frames_topic,
        "MASKWATCH_KAFKA_RESULTS_TOPIC": kafka.results_topic,
        "MASKWATCH_KAFKA_DEAD_LETTER_TOPIC": kafka.dead_letter_topic,
        "MASKWATCH_KAFKA_ALERTS_TOPIC": kafka.alerts_topic,
    }


def detector_env(
    kafka: KafkaSettings, group: str, model_server: str, shared_dir: Path
) -> dict[str, str]:
    """The cheapest detector (small frames, one thread) that knows CAMERAS and HOSTILE_CAMERA."""
    return {
        **topics_env(kafka),
        "MASKWATCH_DETECTOR_GROUP_ID": group,
        "MASKWATCH_DETECTOR_WORKER_ID": group,
        "MASKWATCH_DETECTOR_RUNTIME__HEALTH_PORT": "0",
        "MASKWATCH_DETECTOR_MODEL_SERVER": model_server,
        "MASKWATCH_DETECTOR_DETECTOR__BACKEND": "retinaface-mobilenet",  # cheapest
        "MASKWATCH_DETECTOR_DETECTOR__MODEL_PATH": str(
            shared_dir / "models" / "retinaface_mnet025.onnx"
        ),
        "MASKWATCH_DETECTOR_DETECTOR__UPSCALE_TO_PX": "320",
        "MASKWATCH_DETECTOR_DETECTOR__MAX_SIDE_PX": "320",
        "MASKWATCH_DETECTOR_DETECTOR__THREADS": "1",
        "MASKWATCH_DETECTOR_MAX_AGE_S": "3600",
        "MASKWATCH_DETECTOR_KNOWN_CAMERAS": json.dumps([*CAMERAS, HOSTILE_CAMERA]),
    }


def aggregator_env(kafka: KafkaSettings, prefix: str, group: str) -> dict[str, str]:
    return {
        **topics_env(kafka),
        "MASKWATCH_AGGREGATOR_KEY_PREFIX": prefix,
        "MASKWATCH_AGGREGATOR_GROUP_ID": group,
        "MASKWATCH_AGGREGATOR_CLIENT_ID": group,
        "MASKWATCH_AGGREGATOR_RUNTIME__HEALTH_PORT": "0",
        "MASKWATCH_AGGREGATOR_MAX_FACES": str(MAX_FACES),
        "MASKWATCH_AGGREGATOR_MAX_RESULT_BYTES": str(MAX_RESULT_BYTES),
    }


@pytest.fixture
def services(tmp_path: Path) -> Iterator[list[Service]]:
    started: list[Service] = []
    yield started
    for service in started:
        service.stop()


def small_frames(count: int = 8) -> list[tuple[bytes, int, int]]:
    """Valid 320x240 JPEG frames without faces: detection runs on every one, classification
    on none, so the suite does not depend on the shared model server's speed (its hostile
    cases run against the model server's own tests, tests/serving/test_server.py)."""
    out = []
    for i in range(count):
        ramp = np.linspace(0, 255, 320, dtype=np.float32)[None, :, None]
        image = np.broadcast_to((ramp + 20 * i) % 256, (240, 320, 3)).astype(np.uint8)
        ok, data = cv2.imencode(".jpg", image)
        assert ok
        out.append((bytes(data), 320, 240))
    return out


class Sender:
    """Sends valid frames and hostile records, remembering where each hostile one landed."""

    def __init__(self, kafka: KafkaSettings) -> None:
        self.kafka = kafka
        self.plain = make_producer(kafka, "test-hostile")
        self.gzip = make_producer(kafka, "test-hostile-gzip", compression_type="gzip")
        self._pending: list[tuple[Any, Hostile]] = []
        self.expected: dict[tuple[str, int, int], str] = {}
        self.placed: dict[tuple[str, int, int], Hostile] = {}
        """(topic, partition, offset) → the hostile record written there."""

    def frame(self, camera: str, seq: int, photo: tuple[bytes, int, int]) -> None:
        value, width, height = photo
        meta = FrameMeta(
            camera_id=camera, seq=seq, captured_at=datetime.now(UTC), width=width, height=height
        )
        self.plain.send(
            self.kafka.frames_topic, key=camera.encode(), value=value, headers=frame_headers(meta)
        )

    def hostile(self, record: Hostile, copy: int) -> None:
        topic = self.kafka.frames_topic if record.topic == "frames" else self.kafka.results_topic
        producer = self.gzip if record.gzip else self.plain
        if record.alone:
            self.flush()
        future = producer.send(
            topic,
            key=f"{HOSTILE_CAMERA}-{copy % 3}".encode(),
            value=record.value,
            headers=record.headers,
        )
        self._pending.append((future, record))
        if record.alone:
            self.flush()

    def flush(self) -> None:
        self.plain.flush()
        self.gzip.flush()
        for future, record in self._pending:
            meta = future.get(timeout=30)
            self.expected[(meta.topic, meta.partition, meta.offset)] = record.reason.value
            self.placed[(meta.topic, meta.partition, meta.offset)] = record
        self._pending.clear()

    def close(self) -> None:
        self.flush()
        self.plain.close(timeout=10)
        self.gzip.close(timeout=10)


def dead_letters(kafka: KafkaSettings) -> list[DeadLetter]:
    consumer = KafkaConsumer(
        bootstrap_servers=kafka.bootstrap_servers.split(","), enable_auto_commit=False
    )
    partitions = [TopicPartition(kafka.dead_letter_topic, p) for p in range(3)]
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    ends = consumer.end_offsets(partitions)
    letters: list[DeadLetter] = []
    deadline = time.monotonic() + 60
    while any(consumer.position(p) < ends[p] for p in partitions) and time.monotonic() < deadline:
        for batch in consumer.poll(timeout_ms=500).values():
            letters += [decode(DeadLetter, r.value, SUPPORTED_DEAD_LETTER_VERSIONS) for r in batch]
    consumer.close()
    return letters


def counters(client: redis.Redis, prefix: str) -> dict[str, dict[Any, Any]]:
    """Every counter hash under the prefix (totals, per camera, buckets), not alert state."""
    out: dict[str, dict[Any, Any]] = {}
    for key in client.scan_iter(match=f"{prefix}*", count=1000):
        name = key.decode()
        if client.type(key) == b"hash" and not name.endswith((":alert", ":outbox", ":latest")):
            out[name] = client.hgetall(key)
    return out


def caught_up(kafka: KafkaSettings, group: str) -> bool:
    """Whether `group` has committed the end of every results partition."""
    return committed_to_end(kafka, group, kafka.results_topic, 3)


def test_hostile_records_never_stop_a_stage(
    kafka_settings: KafkaSettings,
    redis_client: redis.Redis,
    redis_prefix: str,
    unique_name: str,
    model_server: str,
    shared_dir: Path,
    services: list[Service],
    tmp_path: Path,
) -> None:
    keys = Keys(redis_prefix)
    detector = Service(
        "detector",
        detector_env(kafka_settings, f"det-{unique_name}", model_server, shared_dir),
        tmp_path / "detector.log",
    )
    aggregator = Service(
        "aggregator",
        aggregator_env(kafka_settings, redis_prefix, f"agg-{unique_name}"),
        tmp_path / "aggregator.log",
    )
    services += [detector, aggregator]

    def frames_counted() -> int:
        return sum(int(redis_client.hget(keys.camera_totals(c), "frames") or 0) for c in CAMERAS)

    photos = small_frames()
    sender = Sender(kafka_settings)
    valid = [(c, seq) for seq in range(FRAMES_PER_CAMERA) for c in CAMERAS]
    warm = valid[: WARM_FRAMES_PER_CAMERA * len(CAMERAS)]
    for camera, seq in warm:
        sender.frame(camera, seq, photos[seq % len(photos)])
    sender.flush()
    wait_until(lambda: frames_counted() == len(warm), "warm-up frames counted", STARTUP_S)
    base_detector, base_aggregator = detector.reset_peak(), aggregator.reset_peak()

    now = datetime.now(UTC)
    kinds = frame_kinds(now) + result_kinds(now)
    assert len(kinds) >= 40
    items: list[tuple[str, int] | tuple[Hostile, int]] = [
        *valid[len(warm) :],
        *[(kind, copy) for kind in kinds for copy in range(COPIES)],
    ]
    random.Random(12).shuffle(items)
    for item, number in items:
        if isinstance(item, Hostile):
            sender.hostile(item, number)
        else:
            sender.frame(item, number, photos[number % len(photos)])
    sender.close()
    assert len(sender.expected) == len(kinds) * COPIES >= 1000

    def settled() -> bool:
        assert detector.alive(), f"detector exited: {detector.tail()}"
        assert aggregator.alive(), f"aggregator exited: {aggregator.tail()}"
        return frames_counted() >= len(valid) and caught_up(kafka_settings, f"agg-{unique_name}")

    wait_until(settled, "valid frames counted and results consumed", SETTLE_S)
    letters = dead_letters(kafka_settings)
    assert detector.alive() and aggregator.alive()

    # every valid frame counted exactly once; nothing of the hostile cameras counted
    for camera in CAMERAS:
        assert (
            int(redis_client.hget(keys.camera_totals(camera), "frames") or 0) == FRAMES_PER_CAMERA
        )
    for camera in (HOSTILE_CAMERA, "intruder"):
        assert redis_client.hgetall(keys.camera_totals(camera)) == {}

    # every hostile record dead-lettered once, with its reason, and nothing else
    got = {(d.source_topic, d.partition, d.offset): d.reason.value for d in letters}
    assert len(letters) == len(got), "a record was dead-lettered twice"
    wrong = {k: (v, got.get(k)) for k, v in sender.expected.items() if got.get(k) != v}
    assert not wrong, (
        f"{len(wrong)} hostile records without their dead letter: {list(wrong.items())[:10]}"
    )
    assert set(got) == set(sender.expected), "a valid record was dead-lettered"
    assert all(len(d.model_dump_json()) < 16_000 for d in letters)

    # bounded memory under attack
    assert detector.peak_mb <= base_detector + DETECTOR_RSS_MARGIN_MB, (
        base_detector,
        detector.peak_mb,
    )
    assert aggregator.peak_mb <= base_aggregator + AGGREGATOR_RSS_MARGIN_MB, (
        base_aggregator,
        aggregator.peak_mb,
    )

    # replaying the whole results topic from offset 0 changes no counter
    before = counters(redis_client, redis_prefix)
    replay_group = f"replay-{unique_name}"
    services.append(
        Service(
            "aggregator",
            aggregator_env(kafka_settings, redis_prefix, replay_group),
            tmp_path / "replay.log",
        )
    )
    wait_until(lambda: caught_up(kafka_settings, replay_group), "the replay to finish", SETTLE_S)
    assert counters(redis_client, redis_prefix) == before
    print(
        f"hostile suite: {len(kinds)} kinds, {len(sender.expected)} hostile records, "
        f"{len(valid)} valid frames; RSS detector {base_detector:.0f} -> peak "
        f"{detector.peak_mb:.0f} MiB, aggregator {base_aggregator:.0f} -> peak "
        f"{aggregator.peak_mb:.0f} MiB"
    )
