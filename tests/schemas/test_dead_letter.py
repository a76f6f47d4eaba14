"""Dead letters: round trips, the payload head never carries the whole image, bad values fail."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.common import DeadLetterReason, SchemaError, decode, encode
from schemas.dead_letter import (
    PAYLOAD_HEAD_BYTES,
    SUPPORTED_DEAD_LETTER_VERSIONS,
    DeadLetter,
    payload_head,
)
from tests.schemas.strategies import aware_times


def read(payload: bytes) -> DeadLetter:
    return decode(DeadLetter, payload, SUPPORTED_DEAD_LETTER_VERSIONS)


dead_letters = st.builds(
    DeadLetter,
    source_topic=st.text(min_size=1, max_size=100),
    partition=st.integers(min_value=0, max_value=10_000),
    offset=st.integers(min_value=0, max_value=2**63 - 1),
    camera_id=st.one_of(st.none(), st.text(max_size=64)),
    seq=st.one_of(st.none(), st.integers(min_value=0)),
    stage=st.sampled_from(["producer", "detector", "aggregator"]),
    reason=st.sampled_from(list(DeadLetterReason)),
    message=st.text(max_size=2000),
    attempts=st.integers(min_value=1, max_value=100),
    payload_size=st.integers(min_value=0, max_value=2**40),
    payload_head_b64=st.binary(max_size=PAYLOAD_HEAD_BYTES).map(payload_head),
    failed_at=aware_times,
)


@given(dead_letters)
def test_round_trip(letter: DeadLetter) -> None:
    assert read(encode(letter)) == letter


@given(st.one_of(st.none(), st.binary(max_size=5_000_000)))
def test_payload_head_is_a_short_prefix(payload: bytes | None) -> None:
    head = base64.b64decode(payload_head(payload))
    assert len(head) <= PAYLOAD_HEAD_BYTES
    assert (payload or b"").startswith(head)
    assert len(payload_head(payload)) <= 64  # fits the contract's field


def test_head_of_a_jpeg_keeps_its_magic() -> None:
    jpeg = b"\xff\xd8\xff\xe0" + bytes(100_000)
    letter = DeadLetter(
        source_topic="maskwatch.frames",
        partition=0,
        offset=1,
        stage="detector",
        reason=DeadLetterReason.CORRUPT_IMAGE,
        message="truncated",
        payload_size=len(jpeg),
        payload_head_b64=payload_head(jpeg),
    )
    assert base64.b64decode(letter.payload_head_b64).startswith(b"\xff\xd8\xff")
    assert len(encode(letter)) < 1_000


def valid_dict() -> dict[str, Any]:
    return {
        "schema_version": 1,
        "source_topic": "maskwatch.frames",
        "partition": 0,
        "offset": 5,
        "stage": "detector",
        "reason": "corrupt_image",
        "message": "bad",
        "payload_size": 10,
        "payload_head_b64": "AAAA",
        "failed_at": "2026-11-25T10:00:00+00:00",
    }


@pytest.mark.parametrize(
    "change",
    [
        {"partition": -1},
        {"offset": -1},
        {"source_topic": ""},
        {"reason": "because"},
        {"stage": "api"},
        {"message": "x" * 2001},
        {"payload_size": -1},
        {"attempts": 0},
        {"payload_head_b64": "A" * 65},
        {"failed_at": "2026-11-25T10:00:00"},
    ],
    ids=lambda change: ",".join(change),
)
def test_bad_values_are_invalid(change: dict[str, Any]) -> None:
    assert read(json.dumps(valid_dict()).encode()).offset == 5
    with pytest.raises(SchemaError) as raised:
        read(json.dumps({**valid_dict(), **change}).encode())
    assert raised.value.code == DeadLetterReason.INVALID_MESSAGE


def test_unsupported_version_is_named() -> None:
    with pytest.raises(SchemaError) as raised:
        read(json.dumps({**valid_dict(), "schema_version": 2}).encode())
    assert raised.value.code == DeadLetterReason.UNSUPPORTED_SCHEMA_VERSION
