"""The run loop's retry rules on real Kafka with an in-process worker, a fake detector and
the client's in-memory FakeClassifier (failures a real model server cannot be made to give
on cue): persistent failures end as dead letters after the bounded attempts, the partition
moves on and its offsets are committed."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import grpc
import numpy as np
import pytest
from kafka import KafkaConsumer, TopicPartition

from imaging.crop import CropConfig, ImageBGR
from imaging.detections import Detections
from runtime.kafka import KafkaSettings, make_consumer, make_producer
from runtime.service import Health
from schemas.common import decode
from schemas.dead_letter import SUPPORTED_DEAD_LETTER_VERSIONS, DeadLetter
from schemas.result import SUPPORTED_RESULT_VERSIONS, FrameResult, SkipReason
from tests.recovery import committed_offsets, end_offsets
from workers.detector.calls import failure_kind
from workers.detector.classifier import ClassifierError, FakeClassifier
from workers.detector.core import Core, CoreConfig
from workers.detector.settings import DetectorSettings
from workers.detector.worker import Worker

from .conftest import jpeg

WIDE, NARROW = 96, 64
"""Frame widths: the fake detector fails on every WIDE frame."""


class PickyDetector:
    """One face per frame; raises on frames WIDE pixels wide (a frame it cannot handle)."""

    licence = "test fixture"
    name, version = "picky", "1"

    def detect(self, image: ImageBGR) -> Detections:
        if image.shape[1] == WIDE:
            raise RuntimeError("cannot handle this frame")
        return Detections(np.array([[4, 4, 30, 30]], np.float32), np.array([0.9], np.float32))


@dataclass
class Running:
    worker: Worker
    classifier: FakeClassifier
    kafka: KafkaSettings
    group: str


@pytest.fixture
def running(
    kafka_settings: KafkaSettings, unique_name: str, request: pytest.FixtureRequest
) -> Iterator[Running]:
    """A running worker; an indirect parameter is the classifier's failure (an exception)
    or the worker's `classify_in_flight` (an int; default 1)."""
    param = getattr(request, "param", None)
    classifier = FakeClassifier(fail_with=param if isinstance(param, Exception) else None)
    settings = DetectorSettings(
        group_id=unique_name,
        worker_id="w1",
        max_attempts=3,
        max_batch_wait_ms=0,
        backoff_initial_s=0.1,
        classify_in_flight=param if isinstance(param, int) else 1,
    )
    core = Core(
        PickyDetector(),
        CoreConfig(
            worker_id="w1",
            classifier_name="mask_classifier",
            crop=CropConfig(size_px=16),
            max_age_s=3600,
            max_frame_bytes=1_000_000,
        ),
    )
    consumer = make_consumer(kafka_settings, unique_name, "w1", kafka_settings.frames_topic)
    producer = make_producer(kafka_settings, "w1")
    stopping = threading.Event()
    worker = Worker(
        settings, kafka_settings, consumer, producer, core, classifier, Health(), stopping
    )
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    yield Running(worker, classifier, kafka_settings, unique_name)
    stopping.set()
    thread.join(timeout=30)
    producer.close(timeout=10)
    consumer.close(autocommit=False)


def send_frames(kafka: KafkaSettings, widths: list[int], age_s: float = 0.0) -> None:
    """Frames of the given widths, captured `age_s` ago, all on partition 0."""
    from schemas.frame import FrameMeta, frame_headers

    producer = make_producer(kafka, "test-frames")
    captured_at = datetime.now(UTC) - timedelta(seconds=age_s)
    for seq, width in enumerate(widths):
        image = np.full((48, width, 3), 200, np.uint8)
        meta = FrameMeta(
            camera_id="cam-a", seq=seq, captured_at=captured_at, width=width, height=48
        )
        producer.send(
            kafka.frames_topic,
            key=b"cam-a",
            partition=0,
            value=jpeg(image),
            headers=frame_headers(meta),
        )
    producer.flush()
    producer.close()


def read_all(kafka: KafkaSettings, topic: str, want: int, timeout_s: float = 60) -> list[bytes]:
    consumer = KafkaConsumer(
        bootstrap_servers=kafka.bootstrap_servers.split(","),
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    consumer.assign([TopicPartition(topic, p) for p in range(3)])
    values: list[bytes] = []
    deadline = time.monotonic() + timeout_s
    while len(values) < want and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=500).values():
            values += [r.value for r in records]
    consumer.close()
    return values


@pytest.mark.integration
def test_frame_failing_detection_is_dead_lettered_and_the_partition_moves_on(
    running: Running,
) -> None:
    send_frames(running.kafka, [NARROW, WIDE, NARROW])
    results = [
        decode(FrameResult, v, SUPPORTED_RESULT_VERSIONS)
        for v in read_all(running.kafka, running.kafka.results_topic, 2)
    ]
    letters = [
        decode(DeadLetter, v, SUPPORTED_DEAD_LETTER_VERSIONS)
        for v in read_all(running.kafka, running.kafka.dead_letter_topic, 1)
    ]
    assert sorted(r.seq for r in results) == [0, 2]
    assert [(d.seq, d.reason.value, d.attempts) for d in letters] == [(1, "processing_failed", 3)]
    assert "cannot handle this frame" in letters[0].message


@pytest.mark.integration
@pytest.mark.parametrize("running", [0, 2], indirect=True, ids=["inline", "two-in-flight"])
def test_every_frame_is_answered_once_and_committed_inline_or_pipelined(
    running: Running,
) -> None:
    """Batches of one frame each (no batch wait): with two calls in flight several are
    classified while the next frames are detected; every frame still gets its own answer
    and the partition is committed to its end."""
    send_frames(running.kafka, [NARROW] * 6)
    results = [
        decode(FrameResult, v, SUPPORTED_RESULT_VERSIONS)
        for v in read_all(running.kafka, running.kafka.results_topic, 6)
    ]
    assert sorted(r.seq for r in results) == list(range(6))
    assert all(r.status == "processed" and r.counts.with_mask == 1 for r in results)
    assert sum(running.classifier.batches) == 6  # every crop classified once
    kafka, topic = running.kafka, running.kafka.frames_topic
    deadline = time.monotonic() + 30
    while committed_offsets(kafka, running.group, topic).get(0, 0) != 6:
        assert time.monotonic() < deadline, "offsets of answered frames never committed"
        time.sleep(0.2)


@pytest.mark.integration
def test_frames_older_than_max_age_are_answered_skipped_without_classifying(
    running: Running,
) -> None:
    """Overload shedding: frames already older than max_age_s (3600 s here) when taken are
    answered `skipped` / too_old — counted by the aggregator, never classified — and the
    partition's offsets are committed like any answered frame's."""
    send_frames(running.kafka, [NARROW, NARROW, NARROW], age_s=7200)
    results = [
        decode(FrameResult, v, SUPPORTED_RESULT_VERSIONS)
        for v in read_all(running.kafka, running.kafka.results_topic, 3)
    ]
    assert sorted((r.seq, r.status, r.skip_reason) for r in results) == [
        (seq, "skipped", SkipReason.TOO_OLD) for seq in range(3)
    ]
    assert all(r.faces == () and r.counts.faces == 0 for r in results)
    assert running.classifier.batches == []
    kafka, topic = running.kafka, running.kafka.frames_topic
    deadline = time.monotonic() + 30
    while committed_offsets(kafka, running.group, topic).get(0, 0) != 3:
        assert time.monotonic() < deadline, "offsets of skipped frames never committed"
        time.sleep(0.2)


@pytest.mark.integration
@pytest.mark.parametrize(
    "running", [ClassifierError(grpc.StatusCode.INVALID_ARGUMENT, "bad crops")], indirect=True
)
def test_persistent_classifier_failure_dead_letters_each_frame_after_bounded_attempts(
    running: Running,
) -> None:
    send_frames(running.kafka, [NARROW, NARROW])
    letters = [
        decode(DeadLetter, v, SUPPORTED_DEAD_LETTER_VERSIONS)
        for v in read_all(running.kafka, running.kafka.dead_letter_topic, 2)
    ]
    assert sorted((d.seq, d.reason.value, d.attempts) for d in letters) == [
        (0, "processing_failed", 3),
        (1, "processing_failed", 3),
    ]
    assert all("INVALID_ARGUMENT" in d.message for d in letters)
    kafka, topic = running.kafka, running.kafka.frames_topic
    ends = end_offsets(kafka, topic, 3)
    deadline = time.monotonic() + 30
    while committed_offsets(kafka, running.group, topic).get(0, 0) != ends[0]:
        assert time.monotonic() < deadline, "offsets of dead-lettered frames never committed"
        time.sleep(0.2)


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (ClassifierError(grpc.StatusCode.UNAVAILABLE, "down"), "outage"),  # server gone: wait
        (ClassifierError(grpc.StatusCode.DEADLINE_EXCEEDED, "slow"), "busy"),  # bounded retries
        (ClassifierError(grpc.StatusCode.RESOURCE_EXHAUSTED, "full"), "busy"),
        (ClassifierError(grpc.StatusCode.INVALID_ARGUMENT, "bad"), "error"),  # bad batch: count
        (ClassifierError(None, "malformed response"), "error"),
        (ValueError("shape"), "error"),
        (ConnectionResetError(), "outage"),
    ],
)
def test_failure_kinds(error: Exception, kind: str) -> None:
    assert failure_kind(error) == kind


@pytest.mark.parametrize(
    "running", [ClassifierError(grpc.StatusCode.DEADLINE_EXCEEDED, "slow")], indirect=True
)
def test_batch_that_always_times_out_is_dead_lettered_not_retried_forever(
    running: Running,
) -> None:
    send_frames(running.kafka, [NARROW, NARROW])
    letters = [
        decode(DeadLetter, v, SUPPORTED_DEAD_LETTER_VERSIONS)
        for v in read_all(running.kafka, running.kafka.dead_letter_topic, 2)
    ]
    assert sorted((d.seq, d.reason.value) for d in letters) == [
        (0, "classifier_unavailable"),
        (1, "classifier_unavailable"),
    ]
    assert all("DEADLINE_EXCEEDED" in d.message for d in letters)
