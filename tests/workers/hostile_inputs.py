"""The catalogue of hostile records for tests/workers/test_hostile.py: each kind is built
from a valid frame or result and names the dead-letter reason a worker must give it.

Kinds cover frame headers (integers `int()` refuses oddly, over-long and non-ASCII values,
missing and repeated headers, times), frame payloads (empty, null, truncated, text, other
formats labelled jpeg, decompression bombs, sizes that disagree with the headers), records
the Kafka client cannot decode (a non-UTF-8 header key, on both topics), results (not JSON,
nested 100,000 deep, too many faces, too large, too large only after Kafka's gzip, values
out of range, inconsistent counts), and camera ids (too long, unknown, not an id).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import cv2
import numpy as np

from schemas.common import DeadLetterReason, encode
from schemas.frame import (
    HEADER_CAMERA_ID,
    HEADER_CAPTURED_AT,
    HEADER_ENCODING,
    HEADER_HEIGHT,
    HEADER_SCHEMA_VERSION,
    HEADER_SEQ,
    HEADER_WIDTH,
    FrameMeta,
    frame_headers,
)
from workers.aggregator.synthetic import result

R = DeadLetterReason
Headers = list[tuple[str, bytes | None]]
HOSTILE_CAMERA = "h-cam"
"""The camera id hostile records claim when they need a valid one (a known camera)."""
MAX_FACES = 50
MAX_RESULT_BYTES = 256 * 1024
"""The aggregator's bounds in the suite (set through its environment)."""


class RawHeaderKey(str):
    """A header key whose wire bytes are not UTF-8 (kafka-python encodes keys with .encode)."""

    __slots__ = ()

    def encode(self, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        return b"mw-\xff\xfe"


@dataclass(frozen=True)
class Hostile:
    """One hostile record and the reason its dead letter must give."""

    kind: str
    topic: Literal["frames", "results"]
    reason: DeadLetterReason
    value: bytes | None
    headers: Headers = field(default_factory=list)
    gzip: bool = False
    """Send through a gzip-compressing producer (inflated only inside the consumer)."""
    alone: bool = False
    """Send in a producer batch of its own (a corrupt record spoils the rest of its batch)."""


def valid_jpeg(width: int = 64, height: int = 48) -> bytes:
    image = np.random.default_rng(width * height).integers(0, 255, (height, width, 3), np.uint8)
    ok, data = cv2.imencode(".jpg", image)
    assert ok
    return bytes(data)


def encoded(ext: str) -> bytes:
    ok, data = cv2.imencode(ext, np.zeros((48, 64, 3), np.uint8))
    assert ok
    return bytes(data)


def declaring(jpeg: bytes, width: int, height: int) -> bytes:
    """`jpeg` with its frame header (SOF0) rewritten to declare another size."""
    sof = jpeg.index(b"\xff\xc0")
    return jpeg[: sof + 5] + height.to_bytes(2, "big") + width.to_bytes(2, "big") + jpeg[sof + 9 :]


def with_header(headers: Headers, name: str, value: bytes | None) -> Headers:
    """`headers` with `name` set to `value` (None: removed)."""
    out = [(k, v) for k, v in headers if k != name]
    return out if value is None else [*out, (name, value)]


def frame_kinds(now: datetime) -> list[Hostile]:
    """Hostile frames (frames topic) and their reasons."""
    jpeg = valid_jpeg()
    meta = FrameMeta(camera_id=HOSTILE_CAMERA, seq=1, captured_at=now, width=64, height=48)
    good: Headers = list(frame_headers(meta))

    def h(name: str, value: bytes | None) -> Headers:
        return with_header(good, name, value)

    def sized(width: int, height: int) -> Headers:
        return with_header(
            h(HEADER_WIDTH, str(width).encode()), HEADER_HEIGHT, str(height).encode()
        )

    future = (now + timedelta(days=365 * 900)).isoformat().encode()
    f: Literal["frames"] = "frames"
    kinds = [
        ("seq missing", R.MISSING_HEADER, jpeg, h(HEADER_SEQ, None)),
        ("seq empty", R.MISSING_HEADER, jpeg, h(HEADER_SEQ, b"")),
        ("camera id missing", R.MISSING_HEADER, jpeg, h(HEADER_CAMERA_ID, None)),
        ("height empty", R.MISSING_HEADER, jpeg, h(HEADER_HEIGHT, b"")),
        ("encoding JPEG upper case", R.UNKNOWN_ENCODING, jpeg, h(HEADER_ENCODING, b"JPEG")),
        ("encoding empty", R.MISSING_HEADER, jpeg, h(HEADER_ENCODING, b"")),
        ("no headers at all", R.MISSING_HEADER, jpeg, []),
        ("seq --5", R.MALFORMED_HEADER, jpeg, h(HEADER_SEQ, b"--5")),
        ("seq -5", R.MALFORMED_HEADER, jpeg, h(HEADER_SEQ, b"-5")),
        ("seq 4301 digits", R.MALFORMED_HEADER, jpeg, h(HEADER_SEQ, b"9" * 4301)),
        ("seq arabic digits", R.MALFORMED_HEADER, jpeg, h(HEADER_SEQ, "٣".encode())),
        ("seq 10^30", R.OUT_OF_RANGE, jpeg, h(HEADER_SEQ, str(10**30).encode())),
        ("width text", R.MALFORMED_HEADER, jpeg, h(HEADER_WIDTH, b"wide")),
        ("width zero", R.MALFORMED_HEADER, jpeg, h(HEADER_WIDTH, b"0")),
        ("height 20000", R.MALFORMED_HEADER, jpeg, h(HEADER_HEIGHT, b"20000")),
        ("camera id 700 kB", R.MALFORMED_HEADER, jpeg, h(HEADER_CAMERA_ID, b"c" * 700_000)),
        ("camera id 65 chars", R.MALFORMED_HEADER, jpeg, h(HEADER_CAMERA_ID, b"c" * 65)),
        ("camera id with space", R.MALFORMED_HEADER, jpeg, h(HEADER_CAMERA_ID, b"gate 1")),
        ("camera id not ASCII", R.MALFORMED_HEADER, jpeg, h(HEADER_CAMERA_ID, b"\xff\xfe")),
        ("camera unknown", R.UNKNOWN_CAMERA, jpeg, h(HEADER_CAMERA_ID, b"intruder")),
        ("seq repeated", R.MALFORMED_HEADER, jpeg, [*good, (HEADER_SEQ, b"2")]),
        ("captured_at text", R.MALFORMED_HEADER, jpeg, h(HEADER_CAPTURED_AT, b"yesterday")),
        (
            "captured_at naive",
            R.MALFORMED_HEADER,
            jpeg,
            h(HEADER_CAPTURED_AT, b"2026-01-01T00:00:00"),
        ),
        ("captured_at year 2926", R.OUT_OF_RANGE, jpeg, h(HEADER_CAPTURED_AT, future)),
        ("schema version 2", R.UNSUPPORTED_SCHEMA_VERSION, jpeg, h(HEADER_SCHEMA_VERSION, b"2")),
        ("schema version text", R.MALFORMED_HEADER, jpeg, h(HEADER_SCHEMA_VERSION, b"v1")),
        ("encoding png", R.UNKNOWN_ENCODING, jpeg, h(HEADER_ENCODING, b"png")),
        ("payload empty", R.CORRUPT_IMAGE, b"", good),
        ("payload null", R.CORRUPT_IMAGE, None, good),
        ("payload text", R.CORRUPT_IMAGE, b"hello, camera", good),
        ("payload truncated JPEG", R.CORRUPT_IMAGE, jpeg[:40], good),
        ("payload JPEG magic only", R.CORRUPT_IMAGE, b"\xff\xd8\xff", good),
        ("PNG labelled jpeg", R.ENCODING_MISMATCH, encoded(".png"), good),
        ("GIF labelled jpeg", R.ENCODING_MISMATCH, b"GIF89a" + bytes(200), good),
        ("TIFF labelled jpeg", R.ENCODING_MISMATCH, encoded(".tiff"), good),
        ("BMP labelled jpeg", R.ENCODING_MISMATCH, encoded(".bmp"), good),
        (
            "bomb 30000x30000",
            R.MALFORMED_HEADER,
            declaring(jpeg, 30000, 30000),
            sized(30000, 30000),
        ),
        ("bomb 12000x12000", R.IMAGE_TOO_LARGE, declaring(jpeg, 12000, 12000), sized(12000, 12000)),
        ("size disagrees with headers", R.SIZE_MISMATCH, jpeg, sized(65, 48)),
        ("SOF height zero", R.SIZE_MISMATCH, declaring(jpeg, 64, 0), good),
    ]
    out = [Hostile(kind, f, reason, value, headers) for kind, reason, value, headers in kinds]
    corrupt = [*good, (RawHeaderKey("x"), b"1")]
    out.append(
        Hostile("frame header key not UTF-8", f, R.CORRUPT_RECORD, jpeg, corrupt, alone=True)
    )
    return out


def result_kinds(now: datetime) -> list[Hostile]:
    """Hostile results (results topic) and their reasons."""
    base: dict[str, Any] = json.loads(encode(result(HOSTILE_CAMERA, 1, now.timestamp(), masked=2)))

    def edited(change: Callable[[dict[str, Any]], None]) -> bytes:
        copy = json.loads(json.dumps(base))
        change(copy)
        return json.dumps(copy).encode()

    crowded = encode(result(HOSTILE_CAMERA, 2, now.timestamp(), masked=MAX_FACES + 1))
    padded = json.dumps(base, indent=MAX_RESULT_BYTES // 40).encode()
    assert len(padded) > MAX_RESULT_BYTES
    inflated = json.dumps(base, indent=900_000 // 40).encode()
    future = (now + timedelta(days=365 * 900)).astimezone(UTC).isoformat()
    r: Literal["results"] = "results"
    kinds = [
        ("result not JSON", R.INVALID_MESSAGE, b"{not json"),
        ("result empty", R.INVALID_MESSAGE, b""),
        ("result null (tombstone)", R.INVALID_MESSAGE, None),
        ("result a list", R.INVALID_MESSAGE, b"[]"),
        ("result nested 100000 deep", R.OVERSIZED_MESSAGE, b"[" * 100_000),
        ("result objects nested 50000 deep", R.OVERSIZED_MESSAGE, b'{"a":' * 50_000),
        (
            "result schema version 9",
            R.UNSUPPORTED_SCHEMA_VERSION,
            edited(lambda d: d.update(schema_version=9)),
        ),
        ("result too many faces", R.TOO_MANY_FACES, crowded),
        ("result over max bytes", R.OVERSIZED_MESSAGE, padded),
        ("result seq 10^30", R.INVALID_MESSAGE, edited(lambda d: d.update(seq=10**30))),
        ("result captured in 2926", R.OUT_OF_RANGE, edited(lambda d: d.update(captured_at=future))),
        (
            "result counts inconsistent",
            R.INVALID_MESSAGE,
            edited(lambda d: d["counts"].update(faces=9)),
        ),
        (
            "result camera id not an id",
            R.INVALID_MESSAGE,
            edited(lambda d: d.update(camera_id="a b")),
        ),
        ("result box outside frame", R.INVALID_MESSAGE, edited(_box_outside)),
        ("result NaN probability", R.INVALID_MESSAGE, edited(_marked).replace(MARK, b"NaN")),
    ]
    out = [Hostile(kind, r, reason, value) for kind, reason, value in kinds]
    out.append(
        Hostile("result over max bytes after gzip", r, R.OVERSIZED_MESSAGE, inflated, gzip=True)
    )
    corrupt: Headers = [(RawHeaderKey("x"), b"1")]
    out.append(
        Hostile(
            "result header key not UTF-8",
            r,
            R.CORRUPT_RECORD,
            encode(result(HOSTILE_CAMERA, 3, now.timestamp())),
            corrupt,
            alone=True,
        )
    )
    return out


def _box_outside(d: dict[str, Any]) -> None:
    d["faces"][0]["xyxy"] = [0.0, 0.0, 50_000.0, 10.0]


MARK = b"0.123456789"


def _marked(d: dict[str, Any]) -> None:
    d["faces"][0]["mask_probability"] = float(MARK)
