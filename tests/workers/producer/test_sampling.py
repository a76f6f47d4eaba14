"""Time-based sampling, downscaling and fitting frames into Kafka's message size."""

from __future__ import annotations

import re

import cv2
import numpy as np
import pytest

from workers.producer.sampling import (
    MIN_SIDE_PX,
    SHRINK_FACTOR,
    Encoded,
    Rejected,
    TimeSampler,
    downscale,
    encode_frame,
    fit_within,
)


def kept(source_fps: float, target_fps: float, seconds: float, jitter_s: float = 0.0) -> int:
    """How many frames of a `source_fps` stream (with uniform arrival jitter) the sampler keeps."""
    count = int(seconds * source_fps)
    jitter = np.random.default_rng(0).uniform(-jitter_s, jitter_s, count)
    times = np.arange(count) / source_fps + jitter
    sampler = TimeSampler(target_fps)
    return sum(sampler.take(float(t)) for t in times)


@pytest.mark.parametrize(
    ("source_fps", "target_fps", "jitter_s", "expected"),
    [
        (25, 2, 0.0, 20),  # the usual case: 25 fps camera, 2 fps out
        (25, 2, 0.015, 20),  # network jitter does not change the average rate
        (10, 10, 0.01, 100),  # target == source: jitter must not halve the rate
        (2, 5, 0.0, 20),  # a slow source is never padded: every frame, no more
        (30, 0.5, 0.0, 5),  # slower than 1 fps
    ],
)
def test_sampler_rate(source_fps: float, target_fps: float, jitter_s: float, expected: int) -> None:
    assert abs(kept(source_fps, target_fps, 10.0, jitter_s) - expected) <= 1


def test_sampler_restarts_its_grid_after_a_gap() -> None:
    sampler = TimeSampler(2.0)
    assert sampler.take(0.0)
    assert not sampler.take(0.2)
    assert sampler.take(30.0)  # after a reconnect: no burst of "owed" frames
    assert not sampler.take(30.1)
    assert sampler.take(30.5)


@pytest.mark.parametrize(
    ("wh", "max_wh", "expected"),
    [
        ((1920, 1080), (1280, 720), (1280, 720)),  # same aspect
        ((4000, 3000), (1280, 720), (960, 720)),  # height-bound
        ((3000, 1000), (1280, 720), (1280, 427)),  # width-bound
        ((640, 480), (1280, 720), (640, 480)),  # never upscaled
    ],
)
def test_fit_within(
    wh: tuple[int, int], max_wh: tuple[int, int], expected: tuple[int, int]
) -> None:
    assert fit_within(*wh, max_wh) == expected


def test_downscale_returns_the_same_array_when_it_fits() -> None:
    image = np.zeros((100, 200, 3), np.uint8)
    assert downscale(image, (1280, 720)) is image
    assert downscale(np.zeros((1440, 2560, 3), np.uint8), (1280, 720)).shape == (720, 1280, 3)


def noise(height: int, width: int) -> np.ndarray:
    """Random pixels: the worst case for JPEG size."""
    return np.random.default_rng(1).integers(0, 256, (height, width, 3), dtype=np.uint8)


def test_encode_fits_without_degrading_when_small_enough() -> None:
    result = encode_frame(np.full((720, 1280, 3), 128, np.uint8), (1280, 720), 85, 1_000_000)
    assert isinstance(result, Encoded)
    assert (result.width, result.height, result.quality, result.degraded) == (1280, 720, 85, False)
    decoded = cv2.imdecode(np.frombuffer(result.jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert decoded is not None and decoded.shape == (720, 1280, 3)


def test_oversized_frame_is_re_encoded_and_shrunk_to_fit() -> None:
    limit = 150_000
    result = encode_frame(noise(2160, 3840), (1920, 1080), 95, limit)
    assert isinstance(result, Encoded)
    assert result.degraded and len(result.jpeg) <= limit
    assert result.width < 1920 and result.width / result.height == pytest.approx(16 / 9, rel=0.01)


def test_frame_that_cannot_fit_is_rejected_with_a_reason() -> None:
    result = encode_frame(noise(720, 1280), (1280, 720), 85, 2_000)
    assert isinstance(result, Rejected)
    assert "exceeds the 2000-byte limit" in result.reason
    # rejected only after shrinking as far as allowed: the last size tried is the smallest
    # whose next shrink step would fall under MIN_SIDE_PX
    width, height = map(int, re.search(r" at (\d+)x(\d+) ", result.reason).groups())  # type: ignore[union-attr]
    assert min(width, height) >= MIN_SIDE_PX > min(width, height) * SHRINK_FACTOR


@pytest.mark.parametrize(
    "image",
    [
        np.zeros((10, 10), np.uint8),  # grey, no channel axis
        np.zeros((10, 10, 4), np.uint8),  # BGRA
        np.zeros((10, 10, 3), np.float32),  # wrong dtype
    ],
)
def test_wrong_image_layout_is_rejected_not_crashed(image: np.ndarray) -> None:
    assert isinstance(encode_frame(image, (1280, 720), 85, 10**6), Rejected)
