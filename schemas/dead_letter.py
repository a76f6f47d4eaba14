"""Dead letters: a message that could not be processed, with the reason and where it was.

Never the whole payload (a frame is a picture of people): only its size and first bytes,
enough to tell a truncated JPEG from a text message.
"""

from __future__ import annotations

import base64
from typing import Final, Literal

from pydantic import Field

from schemas.common import Contract, DeadLetterReason, UtcTime, utc_now

DEAD_LETTER_SCHEMA_VERSION: Final = 1
SUPPORTED_DEAD_LETTER_VERSIONS = frozenset({1})
PAYLOAD_HEAD_BYTES = 32
MESSAGE_CHARS = 2000
CAMERA_ID_CHARS = 64
TOPIC_CHARS = 249
"""Kafka's own limit on topic names."""
Stage = Literal["producer", "detector", "aggregator"]


class DeadLetter(Contract):
    """Why and where a message was rejected."""

    schema_version: Literal[1] = DEAD_LETTER_SCHEMA_VERSION
    source_topic: str = Field(min_length=1)
    partition: int = Field(ge=0)
    offset: int = Field(ge=0)
    camera_id: str | None = Field(default=None, description="Camera id if the message told it.")
    seq: int | None = None
    stage: Stage
    reason: DeadLetterReason
    message: str = Field(max_length=MESSAGE_CHARS)
    attempts: int = Field(ge=1, default=1)
    payload_size: int = Field(ge=0)
    payload_head_b64: str = Field(
        max_length=64, description=f"Base64 of the payload's first {PAYLOAD_HEAD_BYTES} bytes."
    )
    failed_at: UtcTime = Field(default_factory=utc_now)


def payload_head(payload: bytes | None) -> str:
    """Base64 of the first bytes of a payload (never the whole image)."""
    return base64.b64encode((payload or b"")[:PAYLOAD_HEAD_BYTES]).decode("ascii")


def build_dead_letter(
    *,
    source_topic: str,
    partition: int,
    offset: int,
    stage: Stage,
    reason: DeadLetterReason,
    message: str,
    payload: bytes | None,
    camera_id: str | None = None,
    seq: int | None = None,
    attempts: int = 1,
) -> DeadLetter:
    """The one way to build a dead letter: every unbounded input is cut to a stated size
    (camera id 64 characters, message 2000, topic 249, payload to its size and first bytes),
    so a dead letter of any record, however hostile, stays a few kilobytes."""
    return DeadLetter(
        source_topic=source_topic[:TOPIC_CHARS] or "?",
        partition=max(partition, 0),
        offset=max(offset, 0),
        camera_id=None if camera_id is None else _printable(camera_id[:CAMERA_ID_CHARS]),
        seq=seq,
        stage=stage,
        reason=reason,
        message=message[:MESSAGE_CHARS],
        attempts=max(attempts, 1),
        payload_size=len(payload or b""),
        payload_head_b64=payload_head(payload),
    )


def _printable(text: str) -> str:
    """Control characters replaced, so a dead letter's camera id is safe to log and show."""
    return "".join(c if c.isprintable() else "?" for c in text)
