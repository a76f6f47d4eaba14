"""In-memory stand-ins for unit tests of the producer's pure logic (never for integration)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime

import numpy as np
from prometheus_client import CollectorRegistry

from workers.producer.metrics import ProducerMetrics
from workers.producer.sampling import Image
from workers.producer.sender import Done, OutgoingFrame
from workers.producer.sources import SourceError


def new_metrics() -> ProducerMetrics:
    return ProducerMetrics(CollectorRegistry())


def value(metrics: ProducerMetrics, name: str, **labels: str) -> float:
    """A sample's value (0 when the series does not exist yet)."""
    found = metrics.registry.get_sample_value(f"maskwatch_producer_{name}", labels)
    return found or 0.0


def frame(camera_id: str = "cam-1", seq: int = 1) -> OutgoingFrame:
    return OutgoingFrame(camera_id, seq, datetime(2026, 1, 1, tzinfo=UTC), b"\xff\xd8", 2, 2)


class FakeTransport:
    """Records frames; `acks` decides when (and whether) sends are acknowledged."""

    def __init__(self, auto_ack: bool = True) -> None:
        self.sent: list[OutgoingFrame] = []
        self.pending: list[Done] = []
        self.most_pending = 0
        """High-water mark of unacknowledged sends (the sender's in-flight cap, observed)."""
        self.auto_ack = auto_ack
        self.flushed = threading.Event()
        self.lock = threading.Lock()

    def send(self, frame: OutgoingFrame, on_done: Done) -> None:
        with self.lock:
            self.sent.append(frame)
        if self.auto_ack:
            on_done(None)
        else:
            self.pending.append(on_done)
            self.most_pending = max(self.most_pending, len(self.pending))

    def ack_all(self, error: Exception | None = None) -> None:
        pending, self.pending = self.pending, []
        for done in pending:
            done(error)

    def flush(self, timeout_s: float) -> None:
        self.ack_all()
        self.flushed.set()

    def close(self, timeout_s: float) -> None:
        return None


class ScriptedSource:
    """A FrameSource playing a script: 'f' = a frame, 'x' = corrupt frame, 'E' = SourceError,
    '.' = end of source. Opening fails while `fail_opens` > 0."""

    def __init__(
        self, script: str, fail_opens: int = 0, on_grab: Callable[[], None] = lambda: None
    ) -> None:
        self.script, self.position = script, 0
        self.fail_opens = fail_opens
        self.opens = self.closes = 0
        self.on_grab = on_grab
        self._current = "f"

    def open(self) -> None:
        self.opens += 1
        if self.fail_opens > 0:
            self.fail_opens -= 1
            raise SourceError("connection refused")

    def grab(self) -> bool:
        self.on_grab()
        if self.position >= len(self.script):
            return False
        self._current = self.script[self.position]
        self.position += 1
        if self._current == "E":
            raise SourceError("read timed out")
        return self._current != "."

    def retrieve(self) -> Image | None:
        if self._current == "x":
            return None
        return np.full((48, 64, 3), 100, np.uint8)

    def close(self) -> None:
        self.closes += 1
