"""The detector worker's loop: poll → prepare → classify batch → publish → commit.

Pipelined: a due batch's classify call runs in the background (at most `classify_in_flight`,
`workers.detector.pipeline`) while the loop detects the next frames; finished calls land
oldest first on the loop's thread, a failed one entering the retry rules (`calls`) as their
first attempt, so the rules below hold for pipelined and inline calls alike.

Delivery is at-least-once: a frame's offset is committed only after its result (or dead
letter) is acknowledged by Kafka, and only up to the first frame that is not (see
`OffsetTracker`). A worker killed at any point leaves its uncommitted frames to the group
member that takes its partitions over; results are keyed by (camera, seq), so a replay
overwrites rather than double-counts downstream. While the model server is down the worker
backs off, stays in the group (partitions paused, polls continue), reports not-ready and
commits nothing it has not answered. While the broker is unreachable it reports not-ready
too (`runtime.broker`) and waits for it (`Outbox.flush_and_commit`).

One boundary per record: every record taken is answered by a result or a dead letter with a
reason (an undecodable record by its place, `runtime.poll`; a frame that fails
`max_attempts` times). The worker exits only on shutdown or when its own infrastructure
fails (a write Kafka does not acknowledge), never because of data.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaConnectionError, KafkaError

from runtime.backoff import Backoff
from runtime.broker import BrokerProbe
from runtime.dead_letters import DeadLetterLostError
from runtime.kafka import KafkaSettings
from runtime.logs import get_logger
from runtime.poll import CorruptRecord, poll_records
from runtime.service import Health
from schemas.common import DeadLetterReason, utc_now
from schemas.dead_letter import DeadLetter, build_dead_letter
from schemas.frame import FrameMeta
from schemas.result import FrameResult
from workers.detector import metrics
from workers.detector.batching import CropBatcher, concat_crops
from workers.detector.calls import (
    Answer,
    ClassifierBusyError,
    ClassifierCalls,
    ClassifyError,
    busy_policy,
    outage_policy,
)
from workers.detector.classifier import Classifier
from workers.detector.core import Core, FrameMessage, Outcome, PendingFrame
from workers.detector.outbox import Outbox
from workers.detector.pipeline import Flight, InFlight
from workers.detector.settings import DetectorSettings

log = get_logger("detector")

LAG_EVERY_S = 5.0
IN_FLIGHT_POLL_S = 0.01
"""Longest poll while a call is in flight (its answer is landed after the poll)."""


class Batch(NamedTuple):
    """Frames whose crops go in one classify call, and those crops."""

    frames: list[PendingFrame]
    crops: npt.NDArray[np.uint8]


class Worker:
    """One detector worker: poll → prepare → classify batch → publish → commit."""

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
        self.settings, self.consumer = settings, consumer
        self.core, self.classifier = core, classifier
        self.health, self.stopping = health, stopping
        self.batcher: CropBatcher[PendingFrame] = CropBatcher(
            settings.max_batch_crops, settings.max_batch_wait_ms / 1000
        )
        self.broker = BrokerProbe(consumer, kafka.frames_topic, health)
        self.outbox = Outbox(kafka, consumer, producer, health, stopping, self.broker)
        self.offsets = self.outbox.offsets
        self.calls = ClassifierCalls(
            classifier,
            outage_policy(settings),
            busy_policy(settings),
            wait=self._idle,
            set_ready=health.set_ready,
            on_answer=self._note_version,
        )
        self.in_flight: InFlight[Batch, Answer] = InFlight(settings.classify_in_flight)
        self._executor = ThreadPoolExecutor(
            max(settings.classify_in_flight, 1), thread_name_prefix="classify"
        )
        self._lag_at = 0.0
        self._rewind: dict[TopicPartition, int] = {}
        """First frame offset discarded per revoked partition (see `on_assigned`)."""

    # ------------------------------------------------------------------ loop

    def run(self) -> None:
        """Until `stopping` is set; then land the calls in flight, classify what is batched,
        commit and return."""
        self.health.set_ready(True, "")
        try:
            while not self.stopping.is_set():
                self.health.beat()
                wait_s = min(self.batcher.wait_left_s(time.perf_counter()), 0.5)
                if len(self.in_flight):
                    wait_s = min(wait_s, IN_FLIGHT_POLL_S)
                records = self._poll(wait_s)
                if records:
                    self.broker.answered()
                else:
                    self.broker.check()
                for partition, record in records:
                    self._take(partition, record)
                    self._land_done()
                    if self.batcher.due(time.perf_counter()):  # the wait bound holds mid-poll
                        self._start(self.batcher.take())
                if self.batcher.due(time.perf_counter()):
                    self._start(self.batcher.take())
                self._land_done()
                self.outbox.flush_and_commit()
                self._report_lag()
            for flight in self.in_flight.pop_all():
                self._land(flight)
            if len(self.batcher):
                self._classify(self._batch(self.batcher.take()))
            self.outbox.flush_and_commit()
        finally:
            self._executor.shutdown(wait=True, cancel_futures=True)
        log.info("stopped", in_flight=self.offsets.in_flight())

    def on_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        """Commit what is answered, then drop frames of partitions another member now owns."""
        lost = set(revoked)
        self._land_before_revoke()
        try:
            self.outbox.flush_and_commit()
        except DeadLetterLostError:
            raise  # its own infrastructure failed: end the worker, nothing committed
        except (KafkaError, RuntimeError) as error:
            # kafka-python 3 may run this on its IO thread, where a blocking commit raises
            # RuntimeError; the next owner re-reads, the aggregator's dedupe counts once.
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

    # ------------------------------------------------------------------ poll

    def _poll(self, wait_s: float) -> list[tuple[TopicPartition, Any]]:
        """The next records; a record the client cannot decode is dead-lettered here."""
        try:
            polled = poll_records(self.consumer, int(wait_s * 1000), self.settings.poll_records)
        except KafkaConnectionError as error:  # a broker restart: wait for it, never exit
            self.broker.lost(error, pause_s=min(wait_s, 0.5))
            return []
        for corrupt in polled.corrupt:
            self._dead_letter_corrupt(corrupt)
        return [(tp, record) for tp, records in polled.records.items() for record in records]

    def _dead_letter_corrupt(self, corrupt: CorruptRecord) -> None:
        tp = TopicPartition(corrupt.topic, corrupt.partition)
        self.offsets.start(tp, corrupt.offset)
        letter = build_dead_letter(
            source_topic=corrupt.topic,
            partition=corrupt.partition,
            offset=corrupt.offset,
            stage="detector",
            reason=DeadLetterReason.CORRUPT_RECORD,
            message=corrupt.error,
            payload=None,
        )
        self.outbox.send_letter(tp, corrupt.offset, letter)

    # ------------------------------------------------------------------ prepare

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
        if not isinstance(outcome, PendingFrame):
            self.outbox.publish(message, outcome)
            return
        metrics.DECODE_MS.observe(outcome.decode_ms)
        metrics.DETECT_MS.observe(outcome.detect_ms)
        if len(outcome.detections):
            self.batcher.add(outcome, len(outcome.detections), time.perf_counter())
        else:
            self._finish(outcome, (np.zeros((0, 2), np.float32), 0.0))

    def _prepare(self, message: FrameMessage) -> Outcome:
        """Headers read once, then core.detect retried; never raises: a frame that keeps
        failing becomes a `processing_failed` dead letter naming the last error."""
        meta: FrameMeta | None = None
        error: Exception | None = None
        for attempt in range(1, self.settings.max_attempts + 1):
            try:
                if meta is None:
                    read = self.core.read(message, utc_now())
                    if isinstance(read, DeadLetter):
                        return read
                    meta = read
                return self.core.detect(message, meta, utc_now())
            except Exception as failure:  # any failure of one frame is retried, then judged
                error = failure
                log.warning(
                    "prepare_failed",
                    partition=message.partition,
                    offset=message.offset,
                    attempt=attempt,
                    error=repr(failure)[:500],
                )
        return self.core.failed(message, meta, repr(error), self.settings.max_attempts)

    # ------------------------------------------------------------------ classify

    def _batch(self, frames: list[PendingFrame]) -> Batch:
        return Batch(
            frames, concat_crops([f.crops_rgb for f in frames], self.core.config.crop.size_px)
        )

    def _start(self, frames: list[PendingFrame]) -> None:
        """Classify a due batch: in the background when calls may be in flight (landing the
        oldest first while there is no room), else inline."""
        batch = self._batch(frames)
        if self.in_flight.limit == 0:
            self._classify(batch)
            return
        while self.in_flight.full():
            oldest = self.in_flight.pop_oldest()
            if oldest is not None:
                self._land(oldest)
        self.in_flight.add(batch, self._executor.submit(self.calls.attempt, batch.crops))

    def _land_done(self) -> None:
        for flight in self.in_flight.pop_done():
            self._land(flight)

    def _land(self, flight: Flight[Batch, Answer]) -> None:
        """Publish a finished call's results (waiting for it); a failed call goes through
        the retry rules with its error as their first attempt."""
        error = flight.future.exception()
        if error is None:
            probabilities, ms = flight.future.result()
            batch = flight.batch
            self._answer(batch, self.calls.answered(batch.crops, probabilities, ms))
        else:
            self._classify(flight.batch, failed=error)

    def _land_before_revoke(self) -> None:
        """Wait for the calls in flight: answered frames are published (and committed by the
        revoke); frames of a failed call go back to the batcher like frames not yet sent
        (the retry rules wait on the consumer, which a rebalance callback cannot)."""
        for flight in self.in_flight.pop_all():
            if flight.future.exception() is None:
                probabilities, ms = flight.future.result()
                batch = flight.batch
                self._answer(batch, self.calls.answered(batch.crops, probabilities, ms))
                continue
            for frame in flight.batch.frames:
                self.batcher.add(frame, len(frame.detections), time.perf_counter())

    def _classify(self, batch: Batch, failed: BaseException | None = None) -> None:
        """Classify the batch's crops in one bounded call and publish their results; a batch
        that fails for a reason other than an outage is retried frame by frame."""
        try:
            answer = self.calls.classify(batch.crops, failed)
        except (ClassifyError, ClassifierBusyError):
            for frame in batch.frames:
                self._classify_alone(frame)
            return
        if answer is None:  # stopping while the model server is down: leave uncommitted
            return
        self._answer(batch, answer)

    def _answer(self, batch: Batch, answer: Answer) -> None:
        """Each frame's share of the probabilities and of the call's time; publish."""
        probabilities, classify_ms = answer
        start = 0
        for frame in batch.frames:
            count = len(frame.detections)
            share = classify_ms * count / max(len(batch.crops), 1)
            self._finish(frame, (probabilities[start : start + count], share))
            start += count

    def _classify_alone(self, frame: PendingFrame) -> None:
        """One frame's crops, `max_attempts` tries; then its dead letter."""
        error: Exception | None = None
        reason = DeadLetterReason.PROCESSING_FAILED
        for _ in range(self.settings.max_attempts):
            try:
                answer = self.calls.classify(frame.crops_rgb)
            except ClassifierBusyError as busy:
                error, reason = busy, DeadLetterReason.CLASSIFIER_UNAVAILABLE
                break  # its retries are already spent
            except ClassifyError as failure:
                error = failure
                continue
            if answer is not None:
                self._finish(frame, answer)
            return
        letter = self.core.failed(
            frame.message, frame.meta, f"classifier: {error!r}", self.settings.max_attempts, reason
        )
        self.outbox.publish(frame.message, letter)

    def _finish(self, frame: PendingFrame, answer: Answer) -> None:
        try:
            outcome: FrameResult | DeadLetter = self.core.finish(
                frame, answer[0], answer[1], utc_now()
            )
        except Exception as error:  # one frame's bad answer must not stop the worker
            outcome = self.core.failed(frame.message, frame.meta, repr(error), 1)
        self.outbox.publish(frame.message, outcome)

    def wait_for_model_server(self) -> bool:
        """Block (not ready, backing off) until the classifier answers; False if stopped.
        A first call with one blank crop also tells which model version is serving."""
        backoff = Backoff(outage_policy(self.settings))
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
            self.stopping.wait(backoff.next_delay() or self.settings.backoff_max_s)
        return False

    def _note_version(self) -> None:
        version = self.classifier.model_version
        if version is not None and self.core.classifier_ref.version != str(version):
            self.core.classifier_ref = self.core.classifier_ref.model_copy(
                update={"version": str(version)}
            )
            log.info("classifier_version", version=version)

    def _idle(self, seconds: float) -> bool:
        """Wait while staying a live group member: partitions paused, polls continue; any
        record a poll returns anyway (a partition assigned meanwhile) is rewound, not lost.
        False if asked to stop."""
        deadline = time.monotonic() + seconds
        while not self.stopping.is_set() and time.monotonic() < deadline:
            self.health.beat()
            self.consumer.pause(*self.consumer.assignment())
            polled = poll_records(self.consumer, 200, self.settings.poll_records)
            for partition, records in polled.records.items():
                self.consumer.seek(partition, records[0].offset)
            for corrupt in polled.corrupt:  # skipped already: its dead letter now
                self._dead_letter_corrupt(corrupt)
        self.consumer.resume(*self.consumer.paused())
        return not self.stopping.is_set()

    def _report_lag(self) -> None:
        """Lag per partition from what the client knows; a position it does not know (after
        a rebalance, with the broker away) is skipped: `position` without a bound waits for
        the coordinator, which stalled the loop (and its readiness) for a whole outage."""
        now = time.monotonic()
        if now - self._lag_at < LAG_EVERY_S:
            return
        self._lag_at = now
        for partition in self.consumer.assignment():
            end = self.consumer.highwater(partition)
            if end is not None:
                position = self.consumer.position(partition, timeout_ms=0)
                if position is not None:
                    metrics.CONSUMER_LAG.labels(str(partition.partition)).set(end - position)
