"""`maskwatch detector`: the consumer-group run loop around the pure core.

Delivery is at-least-once: a frame's offset is committed only after its result (or dead
letter) is acknowledged by Kafka, and only up to the first frame that is not (see
`OffsetTracker`). A worker killed at any point leaves its uncommitted frames to the group
member that takes its partitions over; results are keyed by (camera, seq), so a replay
overwrites rather than double-counts downstream. While the model server is down the worker
backs off, stays in the group (partitions paused, polls continue), reports not-ready and
commits nothing it has not answered.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from typing import Any

import click
import grpc
import numpy as np
import numpy.typing as npt
from kafka import ConsumerRebalanceListener, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import CommitFailedError, KafkaError
from kafka.structs import OffsetAndMetadata

from runtime.kafka import KafkaSettings, make_consumer, make_producer
from runtime.logs import configure_logging, get_logger
from runtime.service import Health, ServiceRuntime
from runtime.settings import load_settings, settings_options
from schemas.common import Contract, encode, utc_now
from schemas.dead_letter import DeadLetter
from schemas.result import FrameResult
from workers.detector import metrics
from workers.detector.backends import make_detector
from workers.detector.batching import CropBatcher, OffsetTracker, concat_crops
from workers.detector.classifier import (
    RETRYABLE,
    Classifier,
    ClassifierError,
    ClientConfig,
    GrpcClassifier,
)
from workers.detector.core import Core, CoreConfig, FrameMessage, PendingFrame
from workers.detector.settings import DetectorSettings

log = get_logger("detector")

LAG_EVERY_S = 5.0


def is_unavailable(error: BaseException) -> bool:
    """Whether a classifier failure means "model server not reachable now" (wait it out)
    rather than "this batch cannot be classified" (counts towards dead-lettering)."""
    if isinstance(error, ClassifierError):
        return error.code in RETRYABLE
    if isinstance(error, grpc.RpcError):
        return error.code() in RETRYABLE  # type: ignore[attr-defined]
    return isinstance(error, ConnectionError | TimeoutError)


class ClassifyError(Exception):
    """A classifier failure that retrying later will not fix by itself."""


class Worker:
    """One detector worker: poll → prepare → batch → classify → publish → commit."""

    def __init__(
        self,
        settings: DetectorSettings,
        kafka: KafkaSettings,
        consumer: KafkaConsumer,
        producer: KafkaProducer,
        core: Core,
        classifier: Classifier,
        health: Health,
        stopping: threading.Event,
    ) -> None:
        self.settings, self.kafka = settings, kafka
        self.consumer, self.producer = consumer, producer
        self.core, self.classifier = core, classifier
        self.health, self.stopping = health, stopping
        self.batcher: CropBatcher[PendingFrame] = CropBatcher(
            settings.max_batch_crops, settings.max_batch_wait_ms / 1000
        )
        self.offsets: OffsetTracker[TopicPartition] = OffsetTracker()
        self._sent: list[tuple[Any, TopicPartition, int, str]] = []
        self._lag_at = 0.0
        self._rewind: dict[TopicPartition, int] = {}
        """First frame offset discarded per revoked partition (see `on_assigned`)."""

    # ------------------------------------------------------------------ loop

    def run(self) -> None:
        """Until `stopping` is set; then finish frames in flight, commit and return."""
        self.health.set_ready(True, "")
        while not self.stopping.is_set():
            self.health.beat()
            wait_s = min(self.batcher.wait_left_s(time.perf_counter()), 0.5)
            polled = self.consumer.poll(
                timeout_ms=int(wait_s * 1000), max_records=self.settings.poll_records
            )
            for partition, records in polled.items():
                for record in records:
                    self._take(partition, record)
                    if self.batcher.due(time.perf_counter()):  # the wait bound holds mid-poll
                        self._classify(self.batcher.take())
            if self.batcher.due(time.perf_counter()):
                self._classify(self.batcher.take())
            self._flush_and_commit()
            self._report_lag()
        if len(self.batcher):
            self._classify(self.batcher.take())
        self._flush_and_commit()
        log.info("stopped", in_flight=self.offsets.in_flight())

    def on_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        """Commit what is answered, then drop frames of partitions another member now owns."""
        lost = set(revoked)
        try:
            self._flush_and_commit()
        except KafkaError as error:
            log.warning("commit_on_revoke_failed", error=str(error))
        dropped = self.batcher.discard(
            lambda f: TopicPartition(f.message.topic, f.message.partition) in lost,
            time.perf_counter(),
        )
        for frame in dropped:
            tp = TopicPartition(frame.message.topic, frame.message.partition)
            self._rewind[tp] = min(self._rewind.get(tp, frame.message.offset), frame.message.offset)
        self.offsets.forget(list(lost))
        log.info(
            "partitions_revoked",
            partitions=sorted(p.partition for p in lost),
            dropped_frames=len(dropped),
        )

    def on_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        """Re-read frames discarded at the last revoke from partitions that came back: the
        consumer keeps its fetch position for a partition it owns before and after a
        rebalance, so without the seek those frames would be skipped (and later commits
        would step over them). Partitions now owned elsewhere start from the commit."""
        for tp in assigned:
            if tp in self._rewind:
                self.consumer.seek(tp, self._rewind[tp])
                log.info("partition_rewound", partition=tp.partition, offset=self._rewind[tp])
        self._rewind.clear()

    # ------------------------------------------------------------------ stages

    def _take(self, partition: TopicPartition, record: Any) -> None:
        message = FrameMessage(
            record.topic,
            record.partition,
            record.offset,
            record.value,
            [(k, v) for k, v in (record.headers or [])],
        )
        self.offsets.start(partition, record.offset)
        outcome = self._prepare(message)
        if isinstance(outcome, PendingFrame):
            metrics.DECODE_MS.observe(outcome.decode_ms)
            metrics.DETECT_MS.observe(outcome.detect_ms)
            if len(outcome.detections):
                self.batcher.add(outcome, len(outcome.detections), time.perf_counter())
            else:
                empty = np.zeros((0, 2), np.float32)
                self._publish(outcome.message, self.core.finish(outcome, empty, 0.0, utc_now()))
        else:
            self._publish(message, outcome)

    def _prepare(self, message: FrameMessage) -> PendingFrame | FrameResult | DeadLetter:
        """core.prepare, retried; a frame that keeps failing becomes a dead letter."""
        error: Exception | None = None
        for attempt in range(1, self.settings.max_attempts + 1):
            try:
                return self.core.prepare(message, utc_now())
            except Exception as failure:  # any failure of one frame is retried
                error = failure
                log.warning(
                    "prepare_failed",
                    partition=message.partition,
                    offset=message.offset,
                    attempt=attempt,
                    error=repr(failure),
                )
        return self.core.failed(message, repr(error), self.settings.max_attempts)

    def _classify(self, frames: list[PendingFrame]) -> None:
        """Classify the frames' crops in bounded calls and publish their results; a batch
        that fails for a reason other than availability is retried frame by frame."""
        crops = concat_crops([f.crops_rgb for f in frames], self.core.config.crop.size_px)
        try:
            answer = self._call_classifier(crops)
        except ClassifyError as error:
            if len(frames) > 1:
                for frame in frames:
                    self._classify_alone(frame)
                return
            self._classify_alone(frames[0], first_error=error)
            return
        if answer is None:  # stopping while the model server is down: leave uncommitted
            return
        probabilities, classify_ms = answer
        start = 0
        for frame in frames:
            count = len(frame.detections)
            share = classify_ms * count / max(len(crops), 1)
            result = self.core.finish(frame, probabilities[start : start + count], share, utc_now())
            start += count
            self._publish(frame.message, result)

    def _classify_alone(self, frame: PendingFrame, first_error: Exception | None = None) -> None:
        attempts = 1 if first_error else 0
        error = first_error
        while attempts < self.settings.max_attempts:
            try:
                answer = self._call_classifier(frame.crops_rgb)
            except ClassifyError as failure:
                attempts, error = attempts + 1, failure
                continue
            if answer is not None:
                result = self.core.finish(frame, answer[0], answer[1], utc_now())
                self._publish(frame.message, result)
            return
        letter = self.core.failed(frame.message, f"classifier: {error!r}", attempts)
        self._publish(frame.message, letter)

    def _call_classifier(
        self, crops: npt.NDArray[np.uint8]
    ) -> tuple[npt.NDArray[np.float32], float] | None:
        """(N×2 probabilities, ms) — waiting out model-server outages with capped exponential
        back-off; None if asked to stop meanwhile; ClassifyError for other failures."""
        backoff = self.settings.backoff_initial_s
        while True:
            started = time.perf_counter()
            try:
                probabilities = np.asarray(self.classifier.classify(crops), np.float32)
            except Exception as error:  # sorted: outage vs. failure
                if not is_unavailable(error):
                    metrics.CLASSIFIER_FAILURES.labels("error").inc()
                    log.warning("classify_failed", crops=len(crops), error=repr(error))
                    raise ClassifyError(repr(error)) from error
                metrics.CLASSIFIER_FAILURES.labels("unavailable").inc()
                self.health.set_ready(False, "model server unavailable")
                log.warning("model_server_unavailable", backoff_s=backoff, error=repr(error))
                self._idle(backoff)
                if self.stopping.is_set():
                    return None
                backoff = min(backoff * 2, self.settings.backoff_max_s)
                continue
            elapsed_ms = (time.perf_counter() - started) * 1000
            metrics.CLASSIFY_MS.observe(elapsed_ms)
            metrics.BATCH_CROPS.observe(len(crops))
            self.health.set_ready(True, "")
            self._note_version()
            return probabilities, elapsed_ms

    def wait_for_model_server(self) -> bool:
        """Block (not ready, backing off) until the classifier answers; False if stopped.
        A first call with one blank crop also tells which model version is serving."""
        backoff = self.settings.backoff_initial_s
        blank = np.zeros(
            (1, self.core.config.crop.size_px, self.core.config.crop.size_px, 3), np.uint8
        )
        while not self.stopping.is_set():
            self.health.beat()
            try:
                if self.classifier.ready():
                    self.classifier.classify(blank)
                    self._note_version()
                    return True
            except Exception as error:  # the next turn retries; only availability matters here
                log.warning("model_server_not_ready", error=repr(error))
            self.health.set_ready(False, "model server unavailable")
            self.stopping.wait(backoff)
            backoff = min(backoff * 2, self.settings.backoff_max_s)
        return False

    def _note_version(self) -> None:
        version = self.classifier.model_version
        if version is not None and self.core.classifier_ref.version != str(version):
            self.core.classifier_ref = self.core.classifier_ref.model_copy(
                update={"version": str(version)}
            )
            log.info("classifier_version", version=version)

    def _idle(self, seconds: float) -> None:
        """Wait while staying a live group member: partitions paused, polls continue; any
        record a poll returns anyway (a partition assigned meanwhile) is rewound, not lost."""
        deadline = time.monotonic() + seconds
        while not self.stopping.is_set() and time.monotonic() < deadline:
            self.health.beat()
            self.consumer.pause(*self.consumer.assignment())
            polled = self.consumer.poll(timeout_ms=200, max_records=self.settings.poll_records)
            for partition, records in polled.items():
                self.consumer.seek(partition, records[0].offset)
        self.consumer.resume(*self.consumer.paused())

    # ------------------------------------------------------------------ output

    def _publish(self, message: FrameMessage, outcome: Contract) -> None:
        partition = TopicPartition(message.topic, message.partition)
        if isinstance(outcome, DeadLetter):
            topic, key, label = self.kafka.dead_letter_topic, outcome.camera_id, "dead_lettered"
            metrics.DEAD_LETTERS.labels(outcome.reason.value).inc()
            log.warning(
                "dead_letter",
                reason=outcome.reason.value,
                partition=message.partition,
                offset=message.offset,
                camera_id=outcome.camera_id,
                detail=outcome.message,
            )
        elif isinstance(outcome, FrameResult):
            topic, key, label = self.kafka.results_topic, outcome.camera_id, outcome.status
            if outcome.status == "processed":
                metrics.FACES_PER_FRAME.observe(outcome.counts.faces)
        else:
            raise TypeError(f"cannot publish {type(outcome).__name__}")
        future = self.producer.send(topic, key=key.encode() if key else None, value=encode(outcome))
        self._sent.append((future, partition, message.offset, label))
        if isinstance(outcome, FrameResult) and outcome.status == "processed":
            lag_ms = (outcome.processed_at - outcome.captured_at).total_seconds() * 1000
            metrics.END_TO_END_MS.observe(max(lag_ms, 0.0))

    def _flush_and_commit(self) -> None:
        """Wait for every publish to be acknowledged, then commit what is contiguous."""
        if self._sent:
            self.producer.flush(timeout=60)
            for future, partition, offset, label in self._sent:
                future.get(timeout=0)  # raises if the write failed: crash, nothing committed
                self.offsets.done(partition, offset)
                metrics.FRAMES.labels(label).inc()
            self._sent.clear()
        points = self.offsets.committable()
        metrics.IN_FLIGHT.set(self.offsets.in_flight())
        if not points:
            return
        try:
            self.consumer.commit({p: OffsetAndMetadata(o, "", -1) for p, o in points.items()})
        except CommitFailedError as error:
            log.warning("commit_failed", error=str(error))
            return
        self.offsets.committed(points)

    def _report_lag(self) -> None:
        now = time.monotonic()
        if now - self._lag_at < LAG_EVERY_S:
            return
        self._lag_at = now
        for partition in self.consumer.assignment():
            end = self.consumer.highwater(partition)
            if end is not None:
                position = self.consumer.position(partition)
                metrics.CONSUMER_LAG.labels(str(partition.partition)).set(end - position)


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self) -> None:
        self.worker: Worker | None = None

    def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        if self.worker is not None and revoked:
            self.worker.on_revoked(revoked)

    def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        log.info("partitions_assigned", partitions=sorted(p.partition for p in assigned))
        if self.worker is not None:
            self.worker.on_assigned(assigned)


def make_classifier(settings: DetectorSettings) -> GrpcClassifier:
    """The gRPC client of the model server (one long-lived channel per process)."""
    return GrpcClassifier(
        ClientConfig(
            target=settings.model_server,
            model_name=settings.model_name,
            deadline_s=settings.classify_timeout_s,
            max_batch=settings.max_batch_crops,
        )
    )


@click.command("detector")
@settings_options(DetectorSettings)
def cli(**values: Any) -> None:
    """Detect and classify faces in frames from Kafka; publish one result per frame."""
    settings = load_settings(DetectorSettings, values)
    kafka = KafkaSettings()
    configure_logging(settings.runtime.log_level, settings.runtime.json_logs)
    runtime = ServiceRuntime("detector", settings.runtime.health_port)
    runtime.install_signal_handlers()
    detector = make_detector(settings.detector)
    classifier = make_classifier(settings)
    core = Core(
        detector,
        CoreConfig(
            worker_id=settings.worker_id,
            classifier_name=settings.model_name,
            crop=settings.crop,
            max_age_s=settings.max_age_s,
            max_frame_bytes=kafka.max_frame_bytes,
            mask_threshold=settings.mask_threshold,
            known_cameras=None
            if settings.known_cameras is None
            else frozenset(settings.known_cameras),
        ),
    )
    listener = _Rebalance()
    consumer = make_consumer(kafka, settings.group_id, settings.worker_id)
    producer = make_producer(kafka, settings.worker_id)
    worker = Worker(
        settings, kafka, consumer, producer, core, classifier, runtime.health, runtime.stopping
    )
    listener.worker = worker
    log.info(
        "started",
        worker_id=settings.worker_id,
        detector=detector.name,
        detector_version=detector.version,
        frames_topic=kafka.frames_topic,
    )
    try:
        if worker.wait_for_model_server():  # join the group only once frames can be answered
            consumer.subscribe([kafka.frames_topic], listener=listener)
            worker.run()
    finally:
        producer.close(timeout=30)
        consumer.close(autocommit=False)
        classifier.close()
        runtime.close()
