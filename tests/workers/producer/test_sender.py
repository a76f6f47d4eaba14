"""The bounded sender: drop-oldest when Kafka is behind, full delivery on close."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from schemas.frame import parse_frame_headers
from tests.workers.producer.fakes import FakeTransport, frame, new_metrics, value
from workers.producer.sender import FrameSender, KafkaTransport, OutgoingFrame


def wait_for(condition: object, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.01)


def test_delivers_everything_in_order_and_counts() -> None:
    transport, metrics = FakeTransport(), new_metrics()
    sender = FrameSender(lambda: transport, metrics, capacity=100, max_in_flight=4)
    sender.start()
    for seq in range(50):
        sender.submit(frame(seq=seq))
    sender.close(timeout_s=5)
    assert [f.seq for f in transport.sent] == list(range(50))
    assert value(metrics, "frames_sent_total", camera="cam-1") == 50


def test_slow_kafka_drops_the_oldest_and_memory_stays_bounded() -> None:
    transport, metrics = FakeTransport(auto_ack=False), new_metrics()
    sender = FrameSender(lambda: transport, metrics, capacity=5, max_in_flight=2)
    sender.start()
    sender.submit(frame(seq=0))
    sender.submit(frame(seq=1))
    wait_for(lambda: len(transport.sent) == 2)  # in-flight cap reached, nothing acknowledged
    for seq in range(2, 20):
        sender.submit(frame(seq=seq))
    # 2 in flight + 5 buffered survive; the 13 in between were the oldest and were dropped
    assert value(metrics, "frames_dropped_total", camera="cam-1", reason="buffer_full") == 13
    assert value(metrics, "buffered_frames") == 5
    transport.auto_ack = True  # Kafka recovers: the NEWEST frames go out
    transport.ack_all()
    sender.close(timeout_s=5)
    # a send past the in-flight cap would have gone out before its frame could be dropped
    assert [f.seq for f in transport.sent] == [0, 1, 15, 16, 17, 18, 19]
    assert transport.most_pending == 2
    assert value(metrics, "frames_sent_total", camera="cam-1") == 7


def test_not_delivering_while_a_frame_waits_unacknowledged_past_the_stall_time() -> None:
    transport, metrics = FakeTransport(auto_ack=False), new_metrics()
    sender = FrameSender(lambda: transport, metrics, capacity=5, max_in_flight=2)
    sender.start()
    wait_for(sender.connected.is_set)
    assert sender.delivering(stall_s=0.05)  # idle: nothing waits
    sender.submit(frame(seq=0))
    wait_for(lambda: len(transport.sent) == 1)
    assert sender.delivering(stall_s=60)  # it has only just been sent
    time.sleep(0.1)
    assert not sender.delivering(stall_s=0.05)  # waited longer than that, no answer
    transport.ack_all()
    wait_for(lambda: sender.delivering(stall_s=0.05))  # acknowledged: delivering again
    sender.close(timeout_s=5)


def test_delivery_errors_are_counted_not_raised() -> None:
    transport, metrics = FakeTransport(auto_ack=False), new_metrics()
    sender = FrameSender(lambda: transport, metrics, capacity=10, max_in_flight=10)
    sender.start()
    sender.submit(frame(seq=1))
    wait_for(lambda: len(transport.pending) == 1)
    transport.ack_all(RuntimeError("broker said no"))
    sender.close(timeout_s=5)
    assert value(metrics, "frames_dropped_total", camera="cam-1", reason="delivery_failed") == 1


def test_kafka_down_at_start_buffers_until_it_connects() -> None:
    transport, metrics = FakeTransport(), new_metrics()
    attempts = []
    up = threading.Event()

    def connect() -> FakeTransport:
        attempts.append(1)
        if not up.is_set():
            raise ConnectionError("no brokers")
        return transport

    sender = FrameSender(connect, metrics, capacity=3, max_in_flight=2, connect_retry_s=0.05)
    sender.start()
    for seq in range(5):
        sender.submit(frame(seq=seq))
    wait_for(lambda: len(attempts) >= 2)
    assert not sender.connected.is_set()
    up.set()
    wait_for(sender.connected.is_set)
    sender.close(timeout_s=5)
    assert [f.seq for f in transport.sent] == [2, 3, 4]
    assert value(metrics, "frames_dropped_total", camera="cam-1", reason="buffer_full") == 2


def test_close_deadline_counts_what_could_not_be_sent() -> None:
    transport, metrics = FakeTransport(auto_ack=False), new_metrics()
    transport.flush = lambda timeout_s: None  # type: ignore[method-assign]  # never acknowledges
    sender = FrameSender(lambda: transport, metrics, capacity=10, max_in_flight=1)
    sender.start()
    for seq in range(4):
        sender.submit(frame(seq=seq))
    started = time.monotonic()
    sender.close(timeout_s=0.5)
    assert time.monotonic() - started < 3
    assert value(metrics, "frames_dropped_total", camera="cam-1", reason="shutdown") == 3
    sender.submit(frame(seq=9))  # after close: refused and counted, never queued
    assert value(metrics, "frames_dropped_total", camera="cam-1", reason="shutdown") == 4


@pytest.mark.parametrize(("capacity", "in_flight"), [(0, 1), (1, 0)])
def test_bounds_must_be_positive(capacity: int, in_flight: int) -> None:
    with pytest.raises(ValueError, match=">= 1"):
        FrameSender(FakeTransport, new_metrics(), capacity, in_flight)


class RecordingProducer:
    """Stands in for KafkaProducer.send: records the call, returns a future-like object."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def send(self, topic: str, **kwargs: Any) -> Any:
        self.sent.append({"topic": topic, **kwargs})
        return SimpleNamespace(add_callback=lambda _f: None, add_errback=lambda _f: None)


def test_a_cameras_labels_travel_in_the_frame_header() -> None:
    producer = RecordingProducer()
    transport = KafkaTransport(producer, "frames")  # type: ignore[arg-type]
    moment = datetime(2026, 1, 1, tzinfo=UTC)
    labels = {"site": "north", "zone": "gate"}
    transport.send(OutgoingFrame("cam-1", 1, moment, b"\xff\xd8", 2, 2, labels), lambda _e: None)
    transport.send(OutgoingFrame("cam-2", 1, moment, b"\xff\xd8", 2, 2), lambda _e: None)
    first, second = (parse_frame_headers(call["headers"]) for call in producer.sent)
    assert first.labels == labels and second.labels == {}
