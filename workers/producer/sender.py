"""Getting frames to Kafka without ever letting a slow or absent Kafka grow memory.

Camera threads `submit` frames into one bounded buffer and never block. One sender thread
moves frames from the buffer to Kafka with a cap on frames in flight (sent, not yet
acknowledged). When Kafka is slow or down the in-flight cap is reached, the buffer fills, and
each new frame pushes out the OLDEST buffered frame, counted as dropped (`buffer_full`):
for live video a fresh frame is worth more than a stale one. Memory is bounded by
(buffer capacity + in-flight cap) × the largest frame.

Readiness: `delivering` says whether Kafka is taking frames now. The client reconnects by
itself after a broker restart and reports nothing, so the sender watches its own sends: a
frame in flight with no acknowledgement for `stall_s` means the broker is not there.

On shutdown (`close`) nothing new is accepted, the buffer is drained to Kafka and the
producer flushed, all within a deadline; frames still buffered when it runs out are counted
as dropped (`shutdown`), never silently lost.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from kafka import KafkaProducer

from runtime.logs import get_logger
from schemas.frame import FrameMeta, frame_headers
from workers.producer.metrics import DropReason, ProducerMetrics

log = get_logger("producer.sender")


@dataclass(frozen=True)
class OutgoingFrame:
    """One encoded frame and what its headers will say."""

    camera_id: str
    seq: int
    captured_at: datetime
    jpeg: bytes
    width: int
    height: int
    labels: dict[str, str] = field(default_factory=dict)


Done = Callable[[Exception | None], None]


class FrameTransport(Protocol):
    """Somewhere frames go: `send` hands one over (may block briefly, may raise) and calls
    `on_done` exactly once when it is acknowledged (None) or has failed (the error)."""

    def send(self, frame: OutgoingFrame, on_done: Done) -> None: ...

    def flush(self, timeout_s: float) -> None: ...

    def close(self, timeout_s: float) -> None: ...


class KafkaTransport:
    """Frames to a Kafka topic: value = JPEG, key = camera id, typed headers from `schemas`."""

    def __init__(self, producer: KafkaProducer, topic: str) -> None:
        self._producer, self._topic = producer, topic

    def send(self, frame: OutgoingFrame, on_done: Done) -> None:
        meta = FrameMeta(
            camera_id=frame.camera_id,
            seq=frame.seq,
            captured_at=frame.captured_at,
            width=frame.width,
            height=frame.height,
            labels=frame.labels,
        )
        future = self._producer.send(
            self._topic,
            key=frame.camera_id.encode(),
            value=frame.jpeg,
            headers=frame_headers(meta),
        )
        future.add_callback(lambda _metadata: on_done(None))
        future.add_errback(on_done)

    def flush(self, timeout_s: float) -> None:
        self._producer.flush(timeout=timeout_s)

    def close(self, timeout_s: float) -> None:
        self._producer.close(timeout=timeout_s)


class FrameSender:
    """The bounded buffer and the thread that drains it (see the module doc)."""

    def __init__(
        self,
        connect: Callable[[], FrameTransport],
        metrics: ProducerMetrics,
        capacity: int,
        max_in_flight: int,
        connect_retry_s: float = 2.0,
    ) -> None:
        if capacity < 1 or max_in_flight < 1:
            raise ValueError("capacity and max_in_flight must be >= 1")
        self._connect, self._metrics = connect, metrics
        self._buffer: deque[OutgoingFrame] = deque()
        self._capacity = capacity
        self._slots = threading.BoundedSemaphore(max_in_flight)
        self._in_flight = 0
        self._cond = threading.Condition()
        self._closing = False
        self._deadline = float("inf")
        self._retry_s = connect_retry_s
        self._transport: FrameTransport | None = None
        self.connected = threading.Event()
        self._waiting_since = time.monotonic()
        """When the sends in flight last made progress (one acknowledged, or the first sent)."""
        self._thread = threading.Thread(target=self._run, name="frame-sender", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def submit(self, frame: OutgoingFrame) -> None:
        """Queue a frame for Kafka; never blocks. Drops the oldest frame when full."""
        with self._cond:
            if self._closing:
                self._metrics.dropped(frame.camera_id, DropReason.SHUTDOWN)
                return
            if len(self._buffer) >= self._capacity:
                oldest = self._buffer.popleft()
                self._metrics.dropped(oldest.camera_id, DropReason.BUFFER_FULL)
            self._buffer.append(frame)
            self._metrics.buffered.set(len(self._buffer))
            self._cond.notify()

    def close(self, timeout_s: float) -> None:
        """Stop accepting frames, deliver what is buffered, flush; give up after `timeout_s`."""
        start = time.monotonic()
        with self._cond:
            self._closing = True
            self._deadline = start + timeout_s
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout_s + 1.0)
        transport, remaining = self._transport, max(0.1, self._deadline - time.monotonic())
        if transport is not None:
            try:
                transport.flush(remaining)
            except Exception as error:  # a failed flush must not stop the exit
                log.warning("flush_failed", error=str(error))
            transport.close(remaining)
        with self._cond:
            for frame in self._buffer:
                self._metrics.dropped(frame.camera_id, DropReason.SHUTDOWN)
            lost = len(self._buffer)
            self._buffer.clear()
        log.info(
            "sender_closed",
            lost_in_buffer=lost,
            in_flight=self._in_flight,
            seconds=round(time.monotonic() - start, 3),
        )

    def _expired(self) -> bool:
        return time.monotonic() >= self._deadline

    def _run(self) -> None:
        transport = self._connect_until_closed()
        if transport is None:
            return
        while True:
            # Take an in-flight slot BEFORE taking a frame: while Kafka is behind, frames
            # wait in the buffer, where newer frames can push them out.
            if not self._acquire_slot():
                return
            with self._cond:
                while not self._buffer and not self._closing:
                    self._cond.wait(0.5)
                if not self._buffer or self._expired():
                    self._release_slot()
                    return
                frame = self._buffer.popleft()
                self._metrics.buffered.set(len(self._buffer))
            self._send(transport, frame)

    def _acquire_slot(self) -> bool:
        while not self._slots.acquire(timeout=0.25):
            if self._expired():
                return False
        with self._cond:
            if self._in_flight == 0:
                self._waiting_since = time.monotonic()
            self._in_flight += 1
            self._metrics.in_flight.set(self._in_flight)
        return True

    def delivering(self, stall_s: float) -> bool:
        """Connected, and no frame in flight has waited `stall_s` without any acknowledgement."""
        with self._cond:
            waiting_s = time.monotonic() - self._waiting_since
            return self.connected.is_set() and (self._in_flight == 0 or waiting_s < stall_s)

    def _release_slot(self) -> None:
        with self._cond:
            self._in_flight -= 1
            self._metrics.in_flight.set(self._in_flight)
        self._slots.release()

    def _send(self, transport: FrameTransport, frame: OutgoingFrame) -> None:
        def done(error: Exception | None) -> None:
            self._release_slot()
            if error is None:
                with self._cond:
                    self._waiting_since = time.monotonic()
                self._metrics.frames_sent.labels(frame.camera_id).inc()
            else:
                self._metrics.dropped(frame.camera_id, DropReason.DELIVERY_FAILED)
                log.warning(
                    "delivery_failed", camera_id=frame.camera_id, seq=frame.seq, error=repr(error)
                )

        try:
            transport.send(frame, done)
        except Exception as error:  # Kafka client errors vary; the frame is lost
            done(error)

    def _connect_until_closed(self) -> FrameTransport | None:
        while True:
            try:
                self._transport = self._connect()
                self.connected.set()
                log.info("kafka_connected")
                return self._transport
            except Exception as error:  # any failure means "not yet"
                log.warning("kafka_unavailable", error=repr(error), retry_s=self._retry_s)
            with self._cond:
                if self._closing:
                    return None
                self._cond.wait(self._retry_s)


def kafka_connector(
    make: Callable[..., KafkaProducer], topic: str, **overrides: Any
) -> Callable[[], FrameTransport]:
    """A `connect` callable for FrameSender that builds a KafkaProducer on each attempt."""
    return lambda: KafkaTransport(make(**overrides), topic)
