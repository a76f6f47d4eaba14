"""The pure frame handling: dead letters with reasons, skipped frames, results."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from schemas.common import DeadLetterReason
from schemas.dead_letter import DeadLetter
from schemas.frame import (
    HEADER_ENCODING,
    HEADER_HEIGHT,
    HEADER_SCHEMA_VERSION,
    HEADER_SEQ,
    HEADER_WIDTH,
    FrameMeta,
    frame_headers,
)
from schemas.result import FrameResult, SkipReason
from workers.detector.core import FrameMessage, PendingFrame

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


def replace_value(message: FrameMessage, value: bytes | None) -> FrameMessage:
    return dataclasses.replace(message, value=value)


def encoded(ext: str) -> bytes:
    ok, data = cv2.imencode(ext, IMAGE)
    assert ok
    return bytes(data)


def declaring(width: int, height: int) -> bytes:
    """GOOD's JPEG with its frame header (SOF0) rewritten to declare another size."""
    data = GOOD.value or b""
    sof = data.index(b"\xff\xc0")
    return data[: sof + 5] + height.to_bytes(2, "big") + width.to_bytes(2, "big") + data[sof + 9 :]


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
        # empty and null payloads
        (frame_message(b"", captured_at=NOW), DeadLetterReason.CORRUPT_IMAGE),
        (replace_value(GOOD, None), DeadLetterReason.CORRUPT_IMAGE),
        # a PNG and a GIF labelled jpeg
        (frame_message(encoded(".png"), captured_at=NOW), DeadLetterReason.ENCODING_MISMATCH),
        (frame_message(b"GIF89a" + bytes(64), captured_at=NOW), DeadLetterReason.ENCODING_MISMATCH),
        # a decompression bomb: a small JPEG declaring 30000 x 30000 pixels
        (
            frame_message(
                declaring(30000, 30000),
                headers=replace(
                    replace(GOOD.headers, HEADER_WIDTH, b"30000"), HEADER_HEIGHT, b"30000"
                ),
            ),
            DeadLetterReason.MALFORMED_HEADER,  # the headers' own bound (16384) catches it
        ),
        (
            frame_message(declaring(12000, 12000), captured_at=NOW, wh=(12000, 12000)),
            DeadLetterReason.IMAGE_TOO_LARGE,
        ),
        # the JPEG's size disagrees with the headers
        (
            frame_message(GOOD.value or b"", captured_at=NOW, wh=(65, 48)),
            DeadLetterReason.SIZE_MISMATCH,
        ),
        # captured far in the future
        (
            frame_message(GOOD.value or b"", captured_at=NOW + timedelta(days=365 * 900)),
            DeadLetterReason.OUT_OF_RANGE,
        ),
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
    assert isinstance(result, FrameResult)
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
    assert isinstance(result, FrameResult)
    assert result.classifier.version == "3" and result.status == "processed"


@pytest.mark.parametrize(
    ("probabilities", "says"),
    [
        (np.zeros((2, 2), np.float32), "(1, 2)"),
        (np.array([[np.nan, np.nan]], np.float32), "non-finite"),
        (np.array([[np.inf, 0.0]], np.float32), "non-finite"),
    ],
)
def test_finish_dead_letters_an_unusable_answer(
    probabilities: npt.NDArray[np.float32], says: str
) -> None:
    core = make_core([(4, 4, 20, 20)])
    pending = core.prepare(GOOD, NOW)
    assert isinstance(pending, PendingFrame)
    letter = core.finish(pending, probabilities, 0.0, NOW)
    assert isinstance(letter, DeadLetter)
    assert letter.reason == DeadLetterReason.PROCESSING_FAILED and says in letter.message
    assert (letter.camera_id, letter.seq) == (pending.meta.camera_id, pending.meta.seq)


def test_labels_from_the_frame_header_reach_the_result() -> None:
    core = make_core([(4, 4, 20, 20)])
    labels = {"site": "north", "zone": "gate"}
    meta = FrameMeta(camera_id="cam-1", seq=3, captured_at=NOW, width=64, height=48, labels=labels)
    pending = core.prepare(frame_message(jpeg(IMAGE), headers=frame_headers(meta)), NOW)
    assert isinstance(pending, PendingFrame)
    result = core.finish(pending, np.array([[0.9, 0.1]], np.float32), 1.0, NOW)
    assert isinstance(result, FrameResult) and result.labels == labels
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
    plain_result = core.finish(plain, np.array([[0.9, 0.1]], np.float32), 1.0, NOW)
    assert isinstance(plain_result, FrameResult) and plain_result.labels == {}
