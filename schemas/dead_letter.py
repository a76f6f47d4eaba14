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


class DeadLetter(Contract):
    """Why and where a message was rejected."""

    schema_version: Literal[1] = DEAD_LETTER_SCHEMA_VERSION
    source_topic: str = Field(min_length=1)
    partition: int = Field(ge=0)
    offset: int = Field(ge=0)
    camera_id: str | None = Field(default=None, description="Camera id if the message told it.")
    seq: int | None = None
    stage: Literal["producer", "detector", "aggregator"]
    reason: DeadLetterReason
    message: str = Field(max_length=2000)
    attempts: int = Field(ge=1, default=1)
    payload_size: int = Field(ge=0)
    payload_head_b64: str = Field(
        max_length=64, description=f"Base64 of the payload's first {PAYLOAD_HEAD_BYTES} bytes."
    )
    failed_at: UtcTime = Field(default_factory=utc_now)


def payload_head(payload: bytes | None) -> str:
    """Base64 of the first bytes of a payload (never the whole image)."""
    return base64.b64encode((payload or b"")[:PAYLOAD_HEAD_BYTES]).decode("ascii")
