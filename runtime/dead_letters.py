"""The one dead-letter sink: encode, size-check, send, and confirm before the caller commits.

A dead letter replaces the record it describes: once its source offset is committed, the
dead letter is the only trace. So a send is not done until Kafka acknowledged it, and
`confirm` raises if any send failed; callers commit only after `confirm` returned. Letters
are built by `schemas.dead_letter.build_dead_letter` (bounded fields); the sink still
checks the encoded size against the topic's max message size and shortens the message text
if needed, so a send can never fail for size, and masks credentials in that text (a dead
letter outlives every log line).
"""

from __future__ import annotations

from typing import Any, Protocol

from runtime.logs import get_logger, redact_text
from schemas.common import encode
from schemas.dead_letter import DeadLetter

log = get_logger("dead_letters")

RECORD_OVERHEAD_BYTES = 1024
"""Room for the key, record and batch framing within the topic's max message size."""


class Producer(Protocol):
    """The part of a KafkaProducer the sink uses."""

    def send(self, topic: str, value: bytes | None = ..., key: bytes | None = ...) -> Any: ...
    def flush(self, timeout: float | None = ...) -> None: ...


class DeadLetterLostError(RuntimeError):
    """Kafka did not acknowledge a dead letter: the caller must not commit its source offset."""


class DeadLetterSink:
    """Sends dead letters to one topic and confirms them (see the module doc)."""

    def __init__(self, producer: Producer, topic: str, max_message_bytes: int) -> None:
        self.producer = producer
        self.topic = topic
        self.max_value_bytes = max_message_bytes - RECORD_OVERHEAD_BYTES
        self._pending: list[tuple[Any, DeadLetter]] = []

    def value_of(self, letter: DeadLetter) -> bytes:
        """The encoded letter, shortened (message text first) until it fits the topic."""
        letter = letter.model_copy(update={"message": redact_text(letter.message)})
        value = encode(letter)
        while len(value) > self.max_value_bytes and letter.message:
            shorter = letter.message[: len(letter.message) // 2]
            letter = letter.model_copy(update={"message": shorter})
            value = encode(letter)
        if len(value) > self.max_value_bytes:
            raise ValueError(f"dead letter of {len(value)} bytes cannot fit {self.topic}")
        return value

    def send(self, letter: DeadLetter) -> Any:
        """Send one letter (keyed by its camera id, already bounded); returns the future,
        which `confirm` will also check."""
        key = letter.camera_id.encode() if letter.camera_id else None
        log.warning(
            "dead_letter",
            reason=letter.reason.value,
            topic=letter.source_topic,
            partition=letter.partition,
            offset=letter.offset,
            camera_id=letter.camera_id,
            detail=letter.message[:200],
        )
        future = self.producer.send(self.topic, key=key, value=self.value_of(letter))
        self._pending.append((future, letter))
        return future

    def confirm(self, timeout_s: float = 60.0) -> int:
        """Flush and check every letter sent since the last confirm; raises DeadLetterLostError
        (naming the first lost letter) if any was not acknowledged. Returns how many.

        A flush that times out (the broker is away) raises the producer's KafkaTimeoutError
        and keeps every letter pending, so the caller may wait and confirm again."""
        if not self._pending:
            return 0
        self.producer.flush(timeout=timeout_s)
        pending, self._pending = self._pending, []
        for future, letter in pending:
            try:
                future.get(timeout=0)
            except Exception as error:  # any failure of the send: the source must stay uncommitted
                raise DeadLetterLostError(
                    f"dead letter of {letter.source_topic}/{letter.partition}@{letter.offset} "
                    f"not acknowledged: {error!r}"
                ) from error
        return len(pending)
