"""Frame results: JSON round trips, consistency rules, and rejection of bad payloads."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from schemas.common import DeadLetterReason, SchemaError, decode, encode
from schemas.result import (
    SUPPORTED_RESULT_VERSIONS,
    Counts,
    Face,
    FrameResult,
    counts_of,
)
from tests.schemas.strategies import frame_results

NOW = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


def read(payload: bytes) -> FrameResult:
    return decode(FrameResult, payload, SUPPORTED_RESULT_VERSIONS)


def valid_dict() -> dict[str, Any]:
    face = {"xyxy": [10, 20, 50, 70], "score": 0.9, "label": "with_mask", "mask_probability": 0.8}
    return {
        "schema_version": 1,
        "camera_id": "cam-1",
        "seq": 7,
        "captured_at": NOW.isoformat(),
        "processed_at": NOW.isoformat(),
        "frame_wh": [640, 480],
        "status": "processed",
        "faces": [face],
        "counts": {"faces": 1, "with_mask": 1, "without_mask": 0},
        "detector": {"name": "retinaface", "version": "1"},
        "classifier": {"name": "mask_classifier", "version": "3"},
        "worker_id": "detector-0",
    }


@given(frame_results())
def test_round_trip(result: FrameResult) -> None:
    assert read(encode(result)) == result


@given(frame_results())
def test_counts_are_the_faces_by_label(result: FrameResult) -> None:
    """counts_of against a count written out here, not against itself."""
    labels = [face.label for face in result.faces]
    counted = (len(labels), labels.count("with_mask"), labels.count("without_mask"))
    assert (result.counts.faces, result.counts.with_mask, result.counts.without_mask) == counted
    assert counts_of(result.faces) == result.counts


@given(
    frame_results(),
    st.sampled_from(["faces", "with_mask", "without_mask"]),
    st.integers(min_value=1, max_value=5),
)
def test_counts_that_disagree_with_the_faces_are_refused(
    result: FrameResult, field: str, extra: int
) -> None:
    payload = json.loads(encode(result))
    payload["counts"][field] += extra
    with pytest.raises(SchemaError) as refused:
        read(json.dumps(payload).encode())
    assert refused.value.code is DeadLetterReason.INVALID_MESSAGE


def test_valid_example_parses() -> None:
    result = read(json.dumps(valid_dict()).encode())
    assert result.counts == Counts(faces=1, with_mask=1, without_mask=0)


def test_unknown_fields_are_ignored() -> None:
    """The compatibility rule: a newer writer's extra optional field does not break readers."""
    payload = {**valid_dict(), "added_in_a_later_release": {"any": "thing"}}
    assert read(json.dumps(payload).encode()) == read(json.dumps(valid_dict()).encode())


@pytest.mark.parametrize(
    "change",
    [
        {"counts": {"faces": 2, "with_mask": 1, "without_mask": 1}},
        {"status": "skipped"},  # skipped needs a reason and no faces
        {"skip_reason": "too_old"},  # a reason only on skipped results
        {"status": "skipped", "skip_reason": "too_old"},  # skipped with faces
        {"frame_wh": [0, 480]},
        {"frame_wh": [40, 40]},  # the face box lies outside the frame
        {
            "faces": [
                {
                    "xyxy": [50, 20, 10, 70],
                    "score": 0.9,
                    "label": "with_mask",
                    "mask_probability": 0.8,
                }
            ]
        },  # x2 < x1
        {
            "faces": [
                {
                    "xyxy": [10, 20, 50, 70],
                    "score": 1.5,
                    "label": "with_mask",
                    "mask_probability": 0.8,
                }
            ]
        },
        {
            "faces": [
                {
                    "xyxy": [10, 20, 50, 70],
                    "score": 0.9,
                    "label": "mask_weared_incorrect",
                    "mask_probability": 0.8,
                }
            ]
        },
        {"camera_id": "../etc/passwd"},
        {"seq": -1},
        {"captured_at": "2026-11-25T10:00:00"},  # naive time
        {"worker_id": ""},
        {"status": "done"},
    ],
    ids=lambda change: ",".join(change),
)
def test_inconsistent_results_are_invalid(change: dict[str, Any]) -> None:
    payload = json.dumps({**valid_dict(), **change}).encode()
    with pytest.raises(SchemaError) as raised:
        read(payload)
    assert raised.value.code == DeadLetterReason.INVALID_MESSAGE


@given(st.integers().filter(lambda v: v not in SUPPORTED_RESULT_VERSIONS))
def test_unsupported_version_is_named(version: int) -> None:
    payload = json.dumps({**valid_dict(), "schema_version": version}).encode()
    with pytest.raises(SchemaError) as raised:
        read(payload)
    assert raised.value.code == DeadLetterReason.UNSUPPORTED_SCHEMA_VERSION


@given(
    st.one_of(
        st.binary(max_size=200),
        st.text(max_size=200).map(str.encode),
        st.dictionaries(st.text(max_size=10), st.integers(), max_size=5).map(
            lambda d: json.dumps(d).encode()
        ),
    )
)
def test_arbitrary_bytes_raise_schema_error_only(payload: bytes) -> None:
    with pytest.raises(SchemaError) as raised:
        read(payload)
    assert raised.value.code in {
        DeadLetterReason.INVALID_MESSAGE,
        DeadLetterReason.UNSUPPORTED_SCHEMA_VERSION,
    }


def test_face_box_order_is_checked_on_construction() -> None:
    with pytest.raises(ValidationError):
        Face(xyxy=(10, 10, 5, 20), score=0.5, label="with_mask", mask_probability=0.5)


@given(frame_results())
def test_result_is_frozen(result: FrameResult) -> None:
    with pytest.raises(ValidationError):
        result.seq = 0  # type: ignore[misc]
