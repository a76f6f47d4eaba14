"""Decompression bombs are refused before the decoder allocates anything.

Two shapes of bomb: a JPEG whose frame header (SOF) declares a huge size over a few hundred
bytes of data, and a genuine JPEG of a uniform image, small on the wire but huge decoded
(baseline and progressive). Asserted as facts, not timings: the refusal comes from the
header alone — the decoder is never called — and an image exactly at the limit is decoded.
The memory this saves is measured in tests/benchmarks/bench_decode_bombs.py.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from schemas.common import DeadLetterReason
from schemas.dead_letter import DeadLetter
from workers.detector.core import Core, PendingFrame

from .conftest import FakeDetector, frame_message, make_core

LIMIT_PX = 1000 * 1000


def limited_core() -> Core:
    config = dataclasses.replace(make_core().config, max_image_px=LIMIT_PX, max_frame_bytes=1 << 20)
    return Core(FakeDetector(), config)


def uniform_jpeg(width: int, height: int, progressive: bool = False) -> bytes:
    """A real, decodable JPEG of one grey: a few kB for millions of pixels."""
    params = [cv2.IMWRITE_JPEG_PROGRESSIVE, 1] if progressive else []
    ok, data = cv2.imencode(".jpg", np.full((height, width, 3), 128, np.uint8), params)
    assert ok
    return bytes(data)


def forged(width: int, height: int) -> bytes:
    """A 64x48 JPEG whose SOF0 is rewritten to declare width x height."""
    data = uniform_jpeg(64, 48)
    sof = data.index(b"\xff\xc0")
    return data[: sof + 5] + height.to_bytes(2, "big") + width.to_bytes(2, "big") + data[sof + 9 :]


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Records the detector core's calls of the JPEG decoder (sizes of what it was given)."""
    calls: list[int] = []
    real: Callable[..., object] = cv2.imdecode

    def counted(buffer: npt.NDArray[np.uint8], flags: int) -> object:
        calls.append(int(buffer.size))
        return real(buffer, flags)

    monkeypatch.setattr(cv2, "imdecode", counted)  # the module the core calls
    return calls


@pytest.mark.parametrize(
    ("payload", "wh"),
    [
        (forged(16000, 16000), (16000, 16000)),  # 768 MB decoded from ~700 bytes
        (uniform_jpeg(2000, 1000), (2000, 1000)),  # genuine, 6 MB decoded
        (uniform_jpeg(1001, 1000, progressive=True), (1001, 1000)),  # genuine, progressive
    ],
    ids=["forged SOF 16000x16000", "uniform 2000x1000", "progressive 1001x1000"],
)
def test_a_bomb_is_refused_from_its_header_without_decoding(
    payload: bytes, wh: tuple[int, int], decodes: list[int]
) -> None:
    assert len(payload) * 100 < wh[0] * wh[1] * 3, "not a bomb: the file is not 100x smaller"
    outcome = limited_core().prepare(frame_message(payload, wh=wh), datetime.now(UTC))
    assert isinstance(outcome, DeadLetter)
    assert outcome.reason == DeadLetterReason.IMAGE_TOO_LARGE
    assert decodes == []


@pytest.mark.parametrize("progressive", [False, True])
def test_an_image_at_the_limit_is_decoded(progressive: bool, decodes: list[int]) -> None:
    payload = uniform_jpeg(1000, 1000, progressive)
    outcome = limited_core().prepare(frame_message(payload, wh=(1000, 1000)), datetime.now(UTC))
    assert isinstance(outcome, PendingFrame)
    assert outcome.frame_wh == (1000, 1000)
    assert decodes == [len(payload)]
