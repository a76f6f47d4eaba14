"""The pure frame handling: dead letters with reasons, skipped frames, results."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from schemas.common import DeadLetterReason
from schemas.dead_letter import DeadLetter
from schemas.frame import (
    HEADER_ENCODING,
    HEADER_SCHEMA_VERSION,
    HEADER_SEQ,
    FrameMeta,
    frame_headers,
)
from schemas.result import FrameResult, SkipReason
from workers.detector.core import PendingFrame

from .conftest import frame_message, jpeg, make_core

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
IMAGE = np.zeros((48, 64, 3), np.uint8)
IMAGE[:, :32] = (255, 0, 0)  # left half blue (BGR): its crops are blue in RGB's last channel


def replace(
    headers: list[tuple[str, bytes]], name: str, value: bytes | None
) -> list[tuple[str, bytes]]:
    out = [(k, v) for k, v in headers if k != name]
    return out if value is None else [*out, (name, value)]


GOOD = frame_message(jpeg(IMAGE), captured_at=NOW)


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        # missing seq header
        (
            frame_message(GOOD.value or b"", headers=replace(GOOD.headers, HEADER_SEQ, None)),
            DeadLetterReason.MISSING_HEADER,
        ),
        # a schema version this reader does not know
        (
            frame_message(
                GOOD.value or b"", headers=replace(GOOD.headers, HEADER_SCHEMA_VERSION, b"2")
            ),
            DeadLetterReason.UNSUPPORTED_SCHEMA_VERSION,
        ),
        # encoding other than jpeg
        (
            frame_message(
                GOOD.value or b"", headers=replace(GOOD.headers, HEADER_ENCODING, b"png")
            ),
            DeadLetterReason.UNKNOWN_ENCODING,
        ),
        # truncated JPEG
        (frame_message((GOOD.value or b"")[:40], captured_at=NOW), DeadLetterReason.CORRUPT_IMAGE),
        # not an image at all
        (frame_message(b"hello", captured_at=NOW), DeadLetterReason.CORRUPT_IMAGE),
        # over the frame size limit
        (frame_message(b"x" * 10_001, captured_at=NOW), DeadLetterReason.OVERSIZED_FRAME),
    ],
)
def test_bad_frames_become_dead_letters(message, reason: DeadLetterReason) -> None:  # type: ignore[no-untyped-def]
    core = make_core()
    outcome = core.prepare(message, NOW)
    assert isinstance(outcome, DeadLetter)
    assert outcome.reason == reason and outcome.stage == "detector"
    assert outcome.camera_id == "cam-1"
    assert outcome.payload_size == len(message.value or b"")
    assert core.detector.calls == 0  # type: ignore[attr-defined]


def test_frame_past_max_age_is_skipped_without_detection() -> None:
    core = make_core([(0, 0, 10, 10)])
    old = frame_message(jpeg(IMAGE), seq=7, captured_at=NOW - timedelta(seconds=31))
    outcome = core.prepare(old, NOW)
    assert isinstance(outcome, FrameResult)
    assert outcome.status == "skipped" and outcome.skip_reason == SkipReason.TOO_OLD
    assert outcome.seq == 7 and outcome.counts.faces == 0
    assert core.detector.calls == 0  # type: ignore[attr-defined]


def test_frame_is_detected_cropped_and_finished() -> None:
    core = make_core([(4, 4, 20, 20), (40, 4, 60, 24)])
    pending = core.prepare(GOOD, NOW)
    assert isinstance(pending, PendingFrame)
    assert pending.frame_wh == (64, 48)
    assert pending.crops_rgb.shape == (2, 16, 16, 3) and pending.crops_rgb.flags.c_contiguous
    # RGB order: the blue left half shows in the last channel of the first crop
    assert pending.crops_rgb[0, ..., 2].mean() > 200 and pending.crops_rgb[0, ..., 0].mean() < 50
    result = core.finish(pending, np.array([[0.9, 0.1], [0.2, 0.8]], np.float32), 3.0, NOW)
    assert [f.label for f in result.faces] == ["with_mask", "without_mask"]
    assert result.counts.with_mask == 1 and result.counts.without_mask == 1
    assert result.faces[0].xyxy == (4.0, 4.0, 20.0, 20.0)
    assert result.detector.name == "fake-detector"
    assert result.timings_ms.classify_ms == 3.0 and result.timings_ms.total_ms > 0


def test_classifier_version_follows_the_core_reference() -> None:
    core = make_core()
    pending = core.prepare(GOOD, NOW)
    assert isinstance(pending, PendingFrame)
    core.classifier_ref = core.classifier_ref.model_copy(update={"version": "3"})
    result = core.finish(pending, np.zeros((0, 2), np.float32), 0.0, NOW)
    assert result.classifier.version == "3" and result.status == "processed"


def test_finish_rejects_probabilities_of_another_shape() -> None:
    core = make_core([(4, 4, 20, 20)])
    pending = core.prepare(GOOD, NOW)
    assert isinstance(pending, PendingFrame)
    with pytest.raises(ValueError, match=r"\(1, 2\)"):
        core.finish(pending, np.zeros((2, 2), np.float32), 0.0, NOW)


def test_labels_from_the_frame_header_reach_the_result() -> None:
    core = make_core([(4, 4, 20, 20)])
    labels = {"site": "north", "zone": "gate"}
    meta = FrameMeta(camera_id="cam-1", seq=3, captured_at=NOW, width=64, height=48, labels=labels)
    pending = core.prepare(frame_message(jpeg(IMAGE), headers=frame_headers(meta)), NOW)
    assert isinstance(pending, PendingFrame)
    result = core.finish(pending, np.array([[0.9, 0.1]], np.float32), 1.0, NOW)
    assert result.labels == labels
    old = FrameMeta(
        camera_id="cam-1",
        seq=4,
        captured_at=NOW - timedelta(seconds=31),
        width=64,
        height=48,
        labels=labels,
    )
    skipped = core.prepare(frame_message(jpeg(IMAGE), headers=frame_headers(old)), NOW)
    assert isinstance(skipped, FrameResult) and skipped.labels == labels
    plain = core.prepare(GOOD, NOW)  # a frame without the labels header: no labels
    assert isinstance(plain, PendingFrame)
    assert core.finish(plain, np.array([[0.9, 0.1]], np.float32), 1.0, NOW).labels == {}
