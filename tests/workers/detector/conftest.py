"""Fixtures of the detector tests: a fake face detector and frame messages built like a
producer builds them (JPEG value, typed headers)."""

from __future__ import annotations

from datetime import UTC, datetime

import cv2
import numpy as np
import numpy.typing as npt

from imaging.crop import CropConfig, ImageBGR
from imaging.detections import Detections
from schemas.frame import FrameMeta, frame_headers
from workers.detector.core import Core, CoreConfig, FrameMessage


class FakeDetector:
    """Returns the boxes it was given for every frame (clipped to the frame)."""

    licence = "test fixture"
    name = "fake-detector"
    version = "1"
    licence = "test fake"

    def __init__(self, xyxy: list[tuple[float, float, float, float]] | None = None) -> None:
        self.boxes = np.array(xyxy or [], np.float32).reshape(-1, 4)
        self.calls = 0

    def detect(self, image: ImageBGR) -> Detections:
        self.calls += 1
        scores = np.linspace(0.99, 0.9, len(self.boxes)).astype(np.float32)
        return Detections(self.boxes.copy(), scores)


def make_core(
    boxes: list[tuple[float, float, float, float]] | None = None,
    known_cameras: frozenset[str] | None = None,
    max_frame_bytes: int = 10_000,
) -> Core:
    """The worker's pure core over a FakeDetector returning `boxes`, with 16 px crops."""
    return Core(
        FakeDetector(boxes),
        CoreConfig(
            worker_id="w1",
            classifier_name="mask_classifier",
            crop=CropConfig(size_px=16),
            max_age_s=30.0,
            max_frame_bytes=max_frame_bytes,
            known_cameras=known_cameras,
        ),
    )


def jpeg(image: npt.NDArray[np.uint8]) -> bytes:
    ok, data = cv2.imencode(".jpg", image)
    assert ok
    return bytes(data)


def frame_message(
    value: bytes,
    seq: int = 0,
    captured_at: datetime | None = None,
    wh: tuple[int, int] = (64, 48),
    headers: list[tuple[str, bytes]] | None = None,
    offset: int = 0,
) -> FrameMessage:
    meta = FrameMeta(
        camera_id="cam-1",
        seq=seq,
        captured_at=captured_at or datetime.now(UTC),
        width=wh[0],
        height=wh[1],
    )
    return FrameMessage(
        "frames", 0, offset, value, frame_headers(meta) if headers is None else headers
    )
