"""Pure frame maths: which frames to keep, how big to make them, how to encode them.

Nothing here does I/O or logs; the camera loop calls these and reports what happened.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

Image = npt.NDArray[np.uint8]

#: Quality steps tried, after the configured quality, when a frame is too large.
FALLBACK_QUALITIES = (70, 55, 40)
#: Downscale factor per step once the quality floor is reached, and the smallest side allowed.
SHRINK_FACTOR = 0.75
MIN_SIDE_PX = 96


class TimeSampler:
    """Keeps frames on a fixed time grid of 1/fps seconds; never queues, only skips.

    The grid (not "time since the last kept frame") keeps the average rate exact when source
    frames arrive with jitter: a frame up to half an interval early counts for its grid slot,
    so a source running at exactly the target rate is not thinned by jitter, and a faster
    source yields exactly one frame per slot. After a gap longer than one interval (a
    reconnect) the grid restarts at the next frame instead of catching up.
    """

    def __init__(self, fps: float) -> None:
        if fps <= 0:
            raise ValueError(f"fps must be > 0, got {fps}")
        self.interval_s = 1.0 / fps
        self._due: float | None = None

    def take(self, t_s: float) -> bool:
        """Whether the frame at monotonic time `t_s` (seconds) is sent."""
        if self._due is not None and t_s < self._due - 0.5 * self.interval_s:
            return False
        late = self._due is None or t_s - self._due >= self.interval_s
        self._due = (t_s if late else self._due) + self.interval_s  # type: ignore[operator]
        return True


def fit_within(width: int, height: int, max_wh: tuple[int, int]) -> tuple[int, int]:
    """The largest size with the same aspect ratio inside `max_wh` (never upscales)."""
    scale = min(1.0, max_wh[0] / width, max_wh[1] / height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def downscale(image: Image, max_wh: tuple[int, int]) -> Image:
    """`image` (H×W×3 BGR) shrunk to fit `max_wh`; the same array when it already fits."""
    height, width = image.shape[:2]
    size = fit_within(width, height, max_wh)
    if size == (width, height):
        return image
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)  # type: ignore[return-value]


def encode_jpeg(image: Image, quality: int) -> bytes:
    """Baseline JPEG bytes of a BGR image."""
    ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError(f"JPEG encoding failed for an image of shape {image.shape}")
    return bytes(buffer)


@dataclass(frozen=True)
class Encoded:
    """A frame ready to send; `degraded` when it had to be shrunk or re-encoded to fit."""

    jpeg: bytes
    width: int
    height: int
    quality: int
    degraded: bool


@dataclass(frozen=True)
class Rejected:
    """A frame that cannot be made to fit; `reason` is for the log."""

    reason: str


def encode_frame(
    image: Image, max_wh: tuple[int, int], quality: int, max_bytes: int
) -> Encoded | Rejected:
    """Downscale to `max_wh`, JPEG-encode, and make the result fit in `max_bytes`.

    A frame over the limit is re-encoded at lower qualities, then shrunk step by step; one
    that still does not fit at `MIN_SIDE_PX` is rejected (sending it would fail the whole
    Kafka request). Input must be H×W×3 uint8 BGR.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        return Rejected(f"expected H×W×3 uint8 image, got {image.shape} {image.dtype}")
    frame = downscale(image, max_wh)
    qualities = [quality, *(q for q in FALLBACK_QUALITIES if q < quality)]
    degraded = False
    while True:
        for q in qualities:
            jpeg = encode_jpeg(frame, q)
            if len(jpeg) <= max_bytes:
                height, width = frame.shape[:2]
                return Encoded(jpeg, width, height, q, degraded or q != quality)
        height, width = frame.shape[:2]
        smaller = (int(width * SHRINK_FACTOR), int(height * SHRINK_FACTOR))
        if min(smaller) < MIN_SIDE_PX:
            return Rejected(
                f"{len(jpeg)} bytes at {width}x{height} quality {qualities[-1]} still exceeds "
                f"the {max_bytes}-byte limit"
            )
        frame = cv2.resize(frame, smaller, interpolation=cv2.INTER_AREA)  # type: ignore[assignment]
        qualities, degraded = qualities[-1:], True
