"""Detector workers on the real stack: Kafka, a model server, the ONNX detector, crowd photos.

Workers run as `maskwatch detector` processes (test_recovery.py kills them with SIGKILL).
The first test classifies through the stack's model server (the shipped classifier); the
outage test and test_recovery.py run their own model server (the same `serving.server`
code) with a tiny exported model, so they can stop it without disturbing other test runs,
and stay cheap on shared cores.
"""

from __future__ import annotations

import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from kafka import KafkaConsumer, TopicPartition

from runtime.kafka import KafkaSettings, make_producer
from runtime.settings import RuntimeSettings
from schemas.common import decode
from schemas.dead_letter import SUPPORTED_DEAD_LETTER_VERSIONS, DeadLetter
from schemas.frame import HEADER_ENCODING, HEADER_SCHEMA_VERSION, FrameMeta, frame_headers
from schemas.result import SUPPORTED_RESULT_VERSIONS, FrameResult
from serving.dataset import read_voc
from tests.recovery import (
    committed_offsets,
    committed_to_end,
    free_port,
    http_status,
    metric,
    start_stage,
    stop_stage,
)

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
UNAVAILABLE_CALLS = "maskwatch_detector_classifier_failures_total"
STARTUP_S = 240.0  # a worker imports TensorFlow's protos and ONNX Runtime on loaded cores


def wait_until(condition: Callable[[], bool], what: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")
        time.sleep(0.5)


def metrics_text(worker: Worker) -> str:
    url = f"http://127.0.0.1:{worker.health_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        return str(response.read().decode())


class Worker:
    """A `maskwatch detector` process with its own health port and log file."""

    def __init__(
        self,
        kafka: KafkaSettings,
        group: str,
        model_server: str,
        name: str,
        shared_dir: Path,
        log_dir: Path,
    ) -> None:
        self.health_port = free_port()
        self.group = group
        env = {
            **os.environ,
            "MASKWATCH_KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
            "MASKWATCH_KAFKA_FRAMES_TOPIC": kafka.frames_topic,
            "MASKWATCH_KAFKA_RESULTS_TOPIC": kafka.results_topic,
            "MASKWATCH_KAFKA_DEAD_LETTER_TOPIC": kafka.dead_letter_topic,
            "MASKWATCH_KAFKA_ALERTS_TOPIC": kafka.alerts_topic,
            "MASKWATCH_DETECTOR_GROUP_ID": group,
            "MASKWATCH_DETECTOR_WORKER_ID": name,
            "MASKWATCH_DETECTOR_RUNTIME__HEALTH_PORT": str(self.health_port),
            "MASKWATCH_DETECTOR_MODEL_SERVER": model_server,
            # cheapest; these test delivery
            "MASKWATCH_DETECTOR_DETECTOR__BACKEND": "retinaface-mobilenet",
            "MASKWATCH_DETECTOR_DETECTOR__MODEL_PATH": str(
                shared_dir / "models" / "retinaface_mnet025.onnx"
            ),
            "MASKWATCH_DETECTOR_DETECTOR__UPSCALE_TO_PX": "640",  # cheap: tests share 2 cores
            "MASKWATCH_DETECTOR_DETECTOR__THREADS": "1",
            "MASKWATCH_DETECTOR_MAX_AGE_S": "3600",  # slow starts must not turn frames stale
            "MASKWATCH_DETECTOR_BACKOFF_MAX_S": "2",
            "TF_CPP_MIN_LOG_LEVEL": "3",
        }
        self.log = log_dir / f"{name}.log"
        self.process = start_stage("detector", env, self.log)

    def ready(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"worker exited {self.process.returncode}: {self.tail()}")
        return http_status(self.health_port, "/readyz") == 200

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def stop(self) -> int:
        return stop_stage(self.process)


@pytest.fixture
def workers(
    kafka_settings: KafkaSettings, unique_name: str, shared_dir: Path, tmp_path: Path
) -> Iterator[Callable[[str, str], Worker]]:
    started: list[Worker] = []

    def start(name: str, model_server: str) -> Worker:
        worker = Worker(
            kafka_settings, f"detector-{unique_name}", model_server, name, shared_dir, tmp_path
        )
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


def photos_with_faces(shared_dir: Path, count: int) -> list[Path]:
    """Crowd photos whose annotations hold a face of at least 40 px (found at any scale)."""
    crowd = shared_dir / "data" / "crowd"
    chosen = []
    for xml in sorted((crowd / "annotations").glob("*.xml")):
        sides = [min(x2 - x1, y2 - y1) for _, (x1, y1, x2, y2) in read_voc(xml)]
        if sides and max(sides) >= 40:
            chosen.append(crowd / "images" / f"{xml.stem}.jpg")
        if len(chosen) == count:
            break
    return chosen


class Frames:
    """Sends frames like a producer does (JPEG value, typed headers, camera key)."""

    def __init__(self, kafka: KafkaSettings) -> None:
        self.kafka = kafka
        self.producer = make_producer(kafka, "test-frames")
        self.sent: set[tuple[str, int]] = set()

    def send(
        self,
        camera: str,
        seq: int,
        photo: Path,
        partition: int | None = None,
        headers: list[tuple[str, bytes]] | None = None,
        value: bytes | None = None,
    ) -> None:
        height, width = np.asarray(cv2.imread(str(photo))).shape[:2]
        meta = FrameMeta(
            camera_id=camera, seq=seq, captured_at=datetime.now(UTC), width=width, height=height
        )
        self.producer.send(
            self.kafka.frames_topic,
            key=camera.encode(),
            partition=partition,
            value=photo.read_bytes() if value is None else value,
            headers=frame_headers(meta) if headers is None else headers,
        )
        if headers is None and value is None:
            self.sent.add((camera, seq))

    def flush(self) -> None:
        self.producer.flush(timeout=30)

    def close(self) -> None:
        self.producer.close(timeout=10)


class Topic:
    """Everything written to a topic so far (all partitions, from the beginning)."""

    def __init__(self, kafka: KafkaSettings, topic: str, partitions: int) -> None:
        self.consumer = KafkaConsumer(
            bootstrap_servers=kafka.bootstrap_servers.split(","),
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        self.consumer.assign([TopicPartition(topic, p) for p in range(partitions)])
        self.values: list[bytes] = []

    def read(self) -> list[bytes]:
        for records in self.consumer.poll(timeout_ms=500).values():
            self.values.extend(r.value for r in records)
        return self.values

    def close(self) -> None:
        self.consumer.close()


def results_of(topic: Topic) -> list[FrameResult]:
    return [decode(FrameResult, v, SUPPORTED_RESULT_VERSIONS) for v in topic.read()]


def distinct(results: list[FrameResult]) -> set[tuple[str, int]]:
    return {(r.camera_id, r.seq) for r in results}


def test_every_frame_answered_and_bad_ones_dead_lettered(
    kafka_settings: KafkaSettings,
    workers: Any,
    model_server: str,
    shared_dir: Path,
    unique_name: str,
) -> None:
    """Stack model server: one schema-valid result per good frame, with faces where the
    annotations have them; bad frames land in the dead-letter topic with their reasons and the
    partition moves on; SIGTERM finishes, commits everything and exits 0."""
    photos = photos_with_faces(shared_dir, 4)
    frames = Frames(kafka_settings)
    good = photos[0]
    meta = frame_headers(
        FrameMeta(camera_id="cam-a", seq=100, captured_at=datetime.now(UTC), width=10, height=10)
    )
    wrong_version = [(k, b"9" if k == HEADER_SCHEMA_VERSION else v) for k, v in meta]
    unknown_encoding = [(k, b"webp" if k == HEADER_ENCODING else v) for k, v in meta]
    missing_header = [(k, v) for k, v in meta if k != HEADER_SCHEMA_VERSION]
    for seq, photo in enumerate(photos[:2]):
        frames.send("cam-a", seq, photo, partition=0)
    frames.send("cam-a", 100, good, partition=0, value=good.read_bytes()[:300])  # truncated
    frames.send("cam-a", 101, good, partition=0, headers=wrong_version)
    frames.send("cam-a", 102, good, partition=0, headers=unknown_encoding)
    frames.send("cam-a", 103, good, partition=0, headers=missing_header)
    for seq, photo in enumerate(photos[2:], start=2):
        frames.send("cam-a", seq, photo, partition=0)  # after the bad ones, same partition
    frames.flush()
    results = Topic(kafka_settings, kafka_settings.results_topic, 3)
    letters = Topic(kafka_settings, kafka_settings.dead_letter_topic, 3)
    worker = workers("w1", model_server)
    wait_until(
        lambda: len(results_of(results)) >= 4 and len(letters.read()) >= 4,
        "4 results and 4 dead letters",
        STARTUP_S,
    )

    answered = results_of(results)
    assert distinct(answered) == frames.sent
    for result in answered:
        assert result.status == "processed" and result.counts.faces >= 1, result
        assert result.worker_id == "w1" and result.classifier.name == "mask_classifier"
    dead = [decode(DeadLetter, v, SUPPORTED_DEAD_LETTER_VERSIONS) for v in letters.read()]
    assert sorted(d.reason.value for d in dead) == sorted(
        ["corrupt_image", "unsupported_schema_version", "unknown_encoding", "missing_header"]
    )
    assert all(
        d.stage == "detector" and d.source_topic == kafka_settings.frames_topic for d in dead
    )
    wait_until(
        lambda: 'frames_total{outcome="processed"} 4.0' in metrics_text(worker),
        "processed frames counted",
        30,
    )
    text = metrics_text(worker)
    assert 'maskwatch_detector_frames_total{outcome="dead_lettered"} 4.0' in text
    assert 'maskwatch_detector_dead_letters_total{reason="corrupt_image"} 1.0' in text
    assert "maskwatch_detector_detect_ms_count 4.0" in text
    assert "maskwatch_detector_batch_crops_count" in text
    assert worker.stop() == 0, worker.tail()
    assert committed_to_end(
        kafka_settings, f"detector-{unique_name}", kafka_settings.frames_topic, 3
    )
    frames.close()
    results.close()
    letters.close()


@pytest.fixture(scope="module")
def tiny_model_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model base with `mask_classifier/1`: a tiny uint8-crops → softmax model."""
    import keras

    from serving.export import export_model

    crops = keras.Input(shape=(128, 128, 3), dtype="uint8", name="crops")
    x = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0)(keras.ops.cast(crops, "float32"))
    dense = keras.layers.Dense(2, activation="softmax", name="probabilities")
    model = keras.Model(crops, dense(keras.layers.GlobalAveragePooling2D()(x)))
    dense.set_weights([np.full((3, 2), 0.5, "float32"), np.zeros(2, "float32")])
    base = tmp_path_factory.mktemp("models")
    export_model(model, base, "mask_classifier", 1)
    return base


class OwnModelServer:
    """`maskwatch serve`'s server in this process on a fixed free port, stoppable."""

    def __init__(self, base: Path) -> None:
        self.base, self.port = base, free_port()
        self.server: Any = None

    def start(self) -> None:
        from serving.server import ModelServer, ServeSettings

        settings = ServeSettings(
            model_base=self.base,
            host="127.0.0.1",
            port=self.port,
            runtime=RuntimeSettings(health_port=None),
            poll_s=0.2,
            grace_s=0.5,
        )
        self.server = ModelServer(settings)
        self.server.start()
        wait_until(lambda: self.server.watcher.current is not None, "tiny model loaded", 60)

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop(grace_s=0.2)
            self.server = None


@pytest.fixture
def own_model_server(tiny_model_base: Path) -> Iterator[OwnModelServer]:
    server = OwnModelServer(tiny_model_base)
    server.start()
    yield server
    server.stop()


def test_model_server_outage_loses_nothing(
    kafka_settings: KafkaSettings,
    workers: Any,
    own_model_server: OwnModelServer,
    shared_dir: Path,
) -> None:
    """Model server stopped mid-stream: the worker reports not ready, the broker holds no
    commit of a frame it has not answered, and once the server is back every frame gets a
    processed result."""
    worker = workers("w1", f"127.0.0.1:{own_model_server.port}")
    wait_until(worker.ready, "worker ready", STARTUP_S)
    photos = photos_with_faces(shared_dir, 4)
    frames = Frames(kafka_settings)
    results = Topic(kafka_settings, kafka_settings.results_topic, 3)
    for seq, photo in enumerate(photos):
        frames.send("cam-a", seq, photo)
    frames.flush()
    wait_until(lambda: len(distinct(results_of(results))) == 4, "first frames answered", 120)

    own_model_server.stop()
    for seq, photo in enumerate(photos, start=4):
        frames.send("cam-a", seq, photo)
    frames.flush()
    wait_until(
        lambda: http_status(worker.health_port, "/readyz") == 503,
        "worker not ready while the model server is down",
        120,
    )
    # the worker has taken the new frames and been refused by the down server repeatedly
    # (backing off, not giving up) — an event, not a guess at how long that takes
    wait_until(
        lambda: metric(metrics_text(worker), UNAVAILABLE_CALLS, 'kind="outage"') >= 3,
        "classify calls retried while the model server is down",
        120,
    )
    assert len(distinct(results_of(results))) == 4  # faces cannot be classified: no results
    committed = committed_offsets(kafka_settings, worker.group, kafka_settings.frames_topic)
    assert sum(committed.values()) == 4, "the broker holds commits of unanswered frames"
    assert http_status(worker.health_port, "/healthz") == 200  # alive, just not ready

    own_model_server.start()
    wait_until(lambda: distinct(results_of(results)) == frames.sent, "all frames answered", 120)
    assert all(r.status == "processed" and r.counts.faces >= 1 for r in results_of(results))
    wait_until(worker.ready, "worker ready again", 30)
    assert worker.stop() == 0, worker.tail()
    frames.close()
    results.close()
