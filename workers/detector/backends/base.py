"""What every face-detector backend shares: the interface and the scaling.

A backend is one module in this package holding a class implementing `FaceDetector`; its
config model (a subclass of `BackendConfig` whose `backend` field is a `Literal` naming it)
is in `configs`. The registry (`workers.detector.backends`) picks it by that name.
"""

from __future__ import annotations

from typing import Protocol

import cv2
import numpy as np

from imaging.crop import ImageBGR
from imaging.detections import Detections
from workers.detector.backends.configs import BackendConfig


class FaceDetector(Protocol):
    """Finds faces in BGR frames; `name` and `version` go into every FrameResult."""

    name: str
    version: str
    licence: str
    """The terms of the weights this detector runs (logged at start-up)."""

    def detect(self, image: ImageBGR) -> Detections:
        """Faces in `image` (H×W×3 uint8 BGR), boxes in its pixels."""
        ...


def detection_scale(resolution_wh: tuple[int, int], config: BackendConfig) -> float:
    """The factor a frame is resized by before detection (1.0 = as is)."""
    longer = max(resolution_wh)
    if longer > config.max_side_px:
        return config.max_side_px / longer
    if longer < config.upscale_to_px:
        return min(config.upscale_to_px / longer, config.max_upscale)
    return 1.0


def resized(image: ImageBGR, scale: float) -> ImageBGR:
    """`image` resized by `scale` (a new array), or `image` itself (a view) when scale is 1."""
    if scale == 1.0:
        return image
    interpolation = cv2.INTER_LINEAR if scale > 1.0 else cv2.INTER_AREA
    return np.asarray(
        cv2.resize(image, None, fx=scale, fy=scale, interpolation=interpolation), np.uint8
    )


def check_frame(image: ImageBGR) -> tuple[int, int]:
    """(width, height) of an H×W×3 frame; ValueError naming the shape otherwise."""
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be H×W×3, got shape {image.shape}")
    return int(image.shape[1]), int(image.shape[0])
