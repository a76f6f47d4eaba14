"""Frame messages: the Kafka value is the raw JPEG; everything else travels in headers.

Key = camera id (UTF-8), so one camera's frames stay ordered in one partition. Headers are
typed: `frame_headers` builds them from a `FrameMeta`, `parse_frame_headers` reads them back
and raises `SchemaError` (whose code is the dead-letter reason) on anything malformed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence as Seq
from datetime import UTC, datetime
from typing import Final, Literal

from pydantic import Field, ValidationError

from schemas.common import (
    SEQ_MAX,
    CameraId,
    Contract,
    DeadLetterReason,
    Labels,
    SchemaError,
    Sequence,
    UtcTime,
)

FRAME_SCHEMA_VERSION: Final = 1
SUPPORTED_FRAME_VERSIONS = frozenset({1})
ENCODINGS = ("jpeg",)

HEADER_CAMERA_ID = "mw-camera-id"
HEADER_SEQ = "mw-seq"
HEADER_CAPTURED_AT = "mw-captured-at"
HEADER_WIDTH = "mw-width"
HEADER_HEIGHT = "mw-height"
HEADER_ENCODING = "mw-encoding"
HEADER_SCHEMA_VERSION = "mw-schema-version"
HEADER_LABELS = "mw-labels"
"""Optional (added in version 1, so the version stays): the camera's labels as ASCII JSON."""
REQUIRED_HEADERS = (
    HEADER_SCHEMA_VERSION,
    HEADER_CAMERA_ID,
    HEADER_SEQ,
    HEADER_CAPTURED_AT,
    HEADER_WIDTH,
    HEADER_HEIGHT,
    HEADER_ENCODING,
)

KafkaHeaders = list[tuple[str, bytes]]
MAX_HEADER_BYTES = 64
"""Longest value of any mw- header but the labels (a camera id is at most 64 characters; the
longest other value, an RFC 3339 time with microseconds, is 32): checked before decoding."""
MAX_LABELS_HEADER_BYTES = 2048
"""Longest `mw-labels` value: 16 labels of a 32-character name and a 64-character value as
JSON fit in about 1.7 kB."""


class FrameMeta(Contract):
    """What a frame's headers say about the JPEG in its value."""

    schema_version: Literal[1] = FRAME_SCHEMA_VERSION
    camera_id: CameraId
    seq: Sequence
    captured_at: UtcTime
    width: int = Field(gt=0, le=16384, description="Frame width in pixels.")
    height: int = Field(gt=0, le=16384, description="Frame height in pixels.")
    encoding: Literal["jpeg"] = "jpeg"
    labels: Labels = Field(default_factory=dict)


def frame_headers(meta: FrameMeta) -> KafkaHeaders:
    """Kafka headers for a frame (ASCII values; time as RFC 3339 UTC with microseconds)."""
    captured = meta.captured_at.astimezone(UTC).isoformat(timespec="microseconds")
    values = {
        HEADER_SCHEMA_VERSION: str(meta.schema_version),
        HEADER_CAMERA_ID: meta.camera_id,
        HEADER_SEQ: str(meta.seq),
        HEADER_CAPTURED_AT: captured.replace("+00:00", "Z"),
        HEADER_WIDTH: str(meta.width),
        HEADER_HEIGHT: str(meta.height),
        HEADER_ENCODING: meta.encoding,
    }
    if meta.labels:
        values[HEADER_LABELS] = json.dumps(meta.labels, ensure_ascii=True, sort_keys=True)
    return [(name, value.encode("ascii")) for name, value in values.items()]


def parse_frame_headers(headers: Seq[tuple[str, bytes | None]] | None) -> FrameMeta:
    """Read a frame's headers back into a `FrameMeta`.

    Raises SchemaError: `missing_header` (absent or empty), `unsupported_schema_version`,
    `unknown_encoding`, `out_of_range` (seq beyond SEQ_MAX) or `malformed_header` (longer
    than MAX_HEADER_BYTES, undecodable or invalid values, repeated headers). Never any other
    exception, whatever the bytes.
    """
    values: dict[str, str] = {}
    for name, raw in headers or ():
        if not name.startswith("mw-"):
            continue
        if name in values:
            raise SchemaError(DeadLetterReason.MALFORMED_HEADER, f"header {name} repeated")
        limit = MAX_LABELS_HEADER_BYTES if name == HEADER_LABELS else MAX_HEADER_BYTES
        if raw is not None and len(raw) > limit:
            raise SchemaError(
                DeadLetterReason.MALFORMED_HEADER,
                f"header {name} is {len(raw)} bytes (max {limit})",
            )
        try:
            values[name] = (raw or b"").decode("ascii")
        except UnicodeDecodeError as error:
            raise SchemaError(
                DeadLetterReason.MALFORMED_HEADER, f"header {name} is not ASCII"
            ) from error
    missing = [h for h in REQUIRED_HEADERS if not values.get(h)]
    if missing:
        raise SchemaError(DeadLetterReason.MISSING_HEADER, f"missing headers: {', '.join(missing)}")
    version = _int(values, HEADER_SCHEMA_VERSION)
    if version not in SUPPORTED_FRAME_VERSIONS:
        raise SchemaError(
            DeadLetterReason.UNSUPPORTED_SCHEMA_VERSION,
            f"frame schema_version {version} not in supported {sorted(SUPPORTED_FRAME_VERSIONS)}",
        )
    if values[HEADER_ENCODING] not in ENCODINGS:
        raise SchemaError(
            DeadLetterReason.UNKNOWN_ENCODING,
            f"encoding {values[HEADER_ENCODING]!r} not in {list(ENCODINGS)}",
        )
    try:
        captured = datetime.fromisoformat(values[HEADER_CAPTURED_AT])
    except ValueError as error:
        raise SchemaError(
            DeadLetterReason.MALFORMED_HEADER,
            f"{HEADER_CAPTURED_AT} {values[HEADER_CAPTURED_AT]!r} is not an RFC 3339 time",
        ) from error
    seq = _int(values, HEADER_SEQ)
    if seq > SEQ_MAX:
        raise SchemaError(DeadLetterReason.OUT_OF_RANGE, f"{HEADER_SEQ} {seq} > {SEQ_MAX}")
    try:
        return FrameMeta(
            schema_version=version,  # type: ignore[arg-type]
            camera_id=values[HEADER_CAMERA_ID],
            seq=seq,
            captured_at=captured,
            width=_int(values, HEADER_WIDTH),
            height=_int(values, HEADER_HEIGHT),
            encoding=values[HEADER_ENCODING],  # type: ignore[arg-type]
            labels=_labels(values.get(HEADER_LABELS)),
        )
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        raise SchemaError(DeadLetterReason.MALFORMED_HEADER, problems) from error


def _labels(text: str | None) -> object:
    """The labels header decoded (absent: none); its shape is checked by FrameMeta."""
    if not text:
        return {}
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError) as error:
        raise SchemaError(
            DeadLetterReason.MALFORMED_HEADER, f"{HEADER_LABELS} is not flat JSON: {error}"
        ) from error


def camera_id_from_headers(headers: Seq[tuple[str, bytes | None]] | None) -> str | None:
    """The camera id if a header carries a readable one (for dead letters of bad frames);
    at most MAX_HEADER_BYTES of it are ever copied."""
    for name, raw in headers or ():
        if name == HEADER_CAMERA_ID and raw:
            head = raw[:MAX_HEADER_BYTES]
            return head.decode("ascii") if head.isascii() else None
    return None


def _int(values: dict[str, str], name: str) -> int:
    """A non-negative decimal integer (at most MAX_HEADER_BYTES digits, so int() is cheap and
    cannot refuse it); anything else, signs included, is a malformed header."""
    text = values[name]
    if not _DIGITS.fullmatch(text):
        raise SchemaError(
            DeadLetterReason.MALFORMED_HEADER, f"header {name}={text!r} is not an integer"
        )
    return int(text)


_DIGITS = re.compile(r"[0-9]+")
