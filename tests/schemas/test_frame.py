"""Frame headers: every valid FrameMeta round-trips; anything malformed fails with its code."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from schemas.common import DeadLetterReason, SchemaError
from schemas.frame import (
    HEADER_CAMERA_ID,
    HEADER_CAPTURED_AT,
    HEADER_ENCODING,
    HEADER_HEIGHT,
    HEADER_LABELS,
    HEADER_SCHEMA_VERSION,
    HEADER_SEQ,
    HEADER_WIDTH,
    REQUIRED_HEADERS,
    FrameMeta,
    KafkaHeaders,
    camera_id_from_headers,
    frame_headers,
    parse_frame_headers,
)
from tests.schemas.strategies import frame_metas

META = FrameMeta(
    camera_id="gate-1",
    seq=7,
    captured_at=datetime.fromisoformat("2026-01-01T00:00:00+00:00"),
    width=640,
    height=480,
)


def replaced(headers: KafkaHeaders, name: str, value: bytes) -> KafkaHeaders:
    return [(n, value if n == name else v) for n, v in headers]


def code_of(headers: Sequence[tuple[str, bytes | None]] | None) -> DeadLetterReason:
    with pytest.raises(SchemaError) as raised:
        parse_frame_headers(headers)
    return raised.value.code


@given(frame_metas)
def test_headers_round_trip(meta: FrameMeta) -> None:
    headers = frame_headers(meta)
    parsed = parse_frame_headers(headers)
    assert parsed == meta
    assert parsed.captured_at.utcoffset() is not None
    optional = {HEADER_LABELS} if meta.labels else set()
    assert {name for name, _ in headers} == set(REQUIRED_HEADERS) | optional
    assert all(value.isascii() for _, value in headers)
    assert camera_id_from_headers(headers) == meta.camera_id


@given(frame_metas, st.lists(st.tuples(st.text(max_size=20), st.binary(max_size=20)), max_size=5))
def test_foreign_headers_are_ignored(meta: FrameMeta, foreign: KafkaHeaders) -> None:
    others = [(f"x-{name}", value) for name, value in foreign]
    assert parse_frame_headers(others + frame_headers(meta)) == meta


@given(frame_metas, st.sampled_from(REQUIRED_HEADERS))
def test_missing_header_is_rejected(meta: FrameMeta, dropped: str) -> None:
    headers = [(n, v) for n, v in frame_headers(meta) if n != dropped]
    assert code_of(headers) == DeadLetterReason.MISSING_HEADER


@given(frame_metas, st.sampled_from(REQUIRED_HEADERS))
def test_empty_header_is_rejected(meta: FrameMeta, emptied: str) -> None:
    assert code_of(replaced(frame_headers(meta), emptied, b"")) == DeadLetterReason.MISSING_HEADER


def test_no_headers_at_all_is_rejected() -> None:
    assert code_of(None) == DeadLetterReason.MISSING_HEADER
    assert code_of([]) == DeadLetterReason.MISSING_HEADER


@given(
    frame_metas,
    st.sampled_from([HEADER_SEQ, HEADER_WIDTH, HEADER_HEIGHT]),
    st.text(min_size=1, max_size=12).filter(lambda t: not t.strip("-").isdigit()),
)
def test_non_integer_is_malformed(meta: FrameMeta, name: str, text: str) -> None:
    """Non-digit text and non-ASCII digits (e.g. Arabic-Indic) alike are malformed."""
    headers = replaced(frame_headers(meta), name, text.encode("utf-8"))
    assert code_of(headers) == DeadLetterReason.MALFORMED_HEADER


@given(frame_metas, st.sampled_from(REQUIRED_HEADERS), st.binary(min_size=1, max_size=8))
def test_non_ascii_is_malformed(meta: FrameMeta, name: str, junk: bytes) -> None:
    value = b"\xff" + junk
    assert code_of(replaced(frame_headers(meta), name, value)) == DeadLetterReason.MALFORMED_HEADER


@given(frame_metas, st.sampled_from(REQUIRED_HEADERS))
def test_repeated_header_is_malformed(meta: FrameMeta, name: str) -> None:
    headers = frame_headers(meta)
    again = [(n, v) for n, v in headers if n == name]
    assert code_of(headers + again) == DeadLetterReason.MALFORMED_HEADER


@given(frame_metas, st.integers(min_value=0, max_value=10**60).filter(lambda v: v != 1))
def test_unsupported_version_is_rejected(meta: FrameMeta, version: int) -> None:
    headers = replaced(frame_headers(meta), HEADER_SCHEMA_VERSION, str(version).encode())
    assert code_of(headers) == DeadLetterReason.UNSUPPORTED_SCHEMA_VERSION


@given(frame_metas, st.sampled_from(["png", "JPEG", "h264", "raw"]))
def test_unknown_encoding_is_rejected(meta: FrameMeta, encoding: str) -> None:
    headers = replaced(frame_headers(meta), HEADER_ENCODING, encoding.encode())
    assert code_of(headers) == DeadLetterReason.UNKNOWN_ENCODING


@pytest.mark.parametrize(
    "captured",
    ["yesterday", "2026-13-01T00:00:00Z", "2026-11-25T10:00:00", "1700000000"],
    ids=["words", "bad-month", "naive-no-offset", "epoch-seconds"],
)
def test_bad_capture_time_is_malformed(captured: str) -> None:
    meta = FrameMeta(
        camera_id="cam-1",
        seq=0,
        captured_at=datetime.fromisoformat("2026-11-25T10:00:00+00:00"),
        width=640,
        height=480,
    )
    headers = replaced(frame_headers(meta), HEADER_CAPTURED_AT, captured.encode())
    assert code_of(headers) == DeadLetterReason.MALFORMED_HEADER


@given(
    frame_metas,
    st.sampled_from([HEADER_WIDTH, HEADER_HEIGHT]),
    st.one_of(st.integers(max_value=0), st.integers(min_value=16385)),
)
def test_out_of_range_size_is_malformed(meta: FrameMeta, name: str, size: int) -> None:
    headers = replaced(frame_headers(meta), name, str(size).encode())
    assert code_of(headers) == DeadLetterReason.MALFORMED_HEADER


@given(frame_metas, st.integers(max_value=-1))
def test_negative_sequence_is_malformed(meta: FrameMeta, seq: int) -> None:
    headers = replaced(frame_headers(meta), HEADER_SEQ, str(seq).encode())
    assert code_of(headers) == DeadLetterReason.MALFORMED_HEADER


@given(
    frame_metas,
    st.one_of(
        st.from_regex(r"\A[._-][A-Za-z0-9]{0,5}\Z"),
        st.from_regex(r"\A[A-Za-z0-9]{65,70}\Z"),
        st.from_regex(r"\Acam[ /:@]x\Z"),
    ),
)
def test_invalid_camera_id_is_malformed(meta: FrameMeta, camera: str) -> None:
    headers = replaced(frame_headers(meta), HEADER_CAMERA_ID, camera.encode())
    assert code_of(headers) == DeadLetterReason.MALFORMED_HEADER


header_names = st.one_of(st.sampled_from(REQUIRED_HEADERS), st.text(max_size=16))
header_values = st.one_of(st.none(), st.binary(max_size=24), st.text(max_size=24).map(str.encode))


@given(st.one_of(st.none(), st.lists(st.tuples(header_names, header_values), max_size=12)))
def test_arbitrary_headers_parse_or_raise_schema_error(
    headers: list[tuple[str, bytes | None]] | None,
) -> None:
    """Whatever arrives, the reader gets a FrameMeta or a SchemaError, never another crash."""
    try:
        meta = parse_frame_headers(headers)
    except SchemaError as error:
        assert error.code in DeadLetterReason.__members__.values()
        assert error.message
    else:
        assert parse_frame_headers(frame_headers(meta)) == meta


@given(frame_metas)
def test_meta_is_frozen(meta: FrameMeta) -> None:
    with pytest.raises(ValidationError):
        meta.seq = meta.seq + 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("width", 0),
        ("height", 16385),
        ("seq", -1),
        ("camera_id", ""),
        ("encoding", "png"),
        ("captured_at", datetime(2026, 1, 1)),
    ],  # naive time
)
def test_meta_rejects_bad_values(field: str, value: object) -> None:
    good = {
        "camera_id": "cam-1",
        "seq": 1,
        "width": 640,
        "height": 480,
        "captured_at": datetime.fromisoformat("2026-11-25T10:00:00+00:00"),
    }
    with pytest.raises(ValidationError):
        FrameMeta(**{**good, field: value})


@pytest.mark.parametrize(
    "value",
    [b"site=north", b'["north"]', b'{"Site": "north"}', b'{"site": ""}', b'{"site": 3}'],
)
def test_malformed_labels_header_is_rejected(value: bytes) -> None:
    meta = FrameMeta(
        camera_id="c", seq=1, captured_at=datetime(2026, 1, 1, tzinfo=UTC), width=2, height=2
    )
    headers = [*frame_headers(meta), (HEADER_LABELS, value)]
    assert code_of(headers) == DeadLetterReason.MALFORMED_HEADER


def test_labels_travel_as_ascii_json_and_old_frames_have_none() -> None:
    moment = datetime(2026, 1, 1, tzinfo=UTC)
    meta = FrameMeta(
        camera_id="c",
        seq=1,
        captured_at=moment,
        width=2,
        height=2,
        labels={"site": "Zürich", "zone": "gate"},
    )
    headers = dict(frame_headers(meta))
    assert headers[HEADER_LABELS] == b'{"site": "Z\\u00fcrich", "zone": "gate"}'
    assert parse_frame_headers(list(headers.items())).labels == meta.labels
    del headers[HEADER_LABELS]  # a frame from a producer before labels: still valid, none
    assert parse_frame_headers(list(headers.items())).labels == {}


@given(
    frame_metas,
    st.sampled_from([HEADER_SEQ, HEADER_WIDTH, HEADER_HEIGHT, HEADER_SCHEMA_VERSION]),
    st.sampled_from([b"--5", b"-5", b"+5", b"5_000", b" 5", b"\xd9\xa5", b"9" * 4301, b"1e3"]),
)
def test_hostile_integers_are_malformed_never_a_crash(
    meta: FrameMeta, name: str, value: bytes
) -> None:
    assert code_of(replaced(frame_headers(meta), name, value)) == DeadLetterReason.MALFORMED_HEADER


def test_long_camera_id_is_rejected_before_it_is_copied() -> None:
    headers = replaced(frame_headers(META), HEADER_CAMERA_ID, b"c" * 700_000)
    with pytest.raises(SchemaError, match="700000 bytes") as caught:
        parse_frame_headers(headers)
    assert caught.value.code == DeadLetterReason.MALFORMED_HEADER
    assert camera_id_from_headers(headers) == "c" * 64


def test_seq_beyond_int64_is_out_of_range() -> None:
    headers = replaced(frame_headers(META), HEADER_SEQ, str(10**30).encode())
    assert code_of(headers) == DeadLetterReason.OUT_OF_RANGE
