"""What every face-detector backend shares: the interface, the common config, the scaling.

A backend is one module in this package holding its own config model (a subclass of
`BackendConfig` whose `backend` field is a `Literal` naming it) and a class implementing
`FaceDetector`. The registry (`workers.detector.backends`) picks it by that name.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from imaging.crop import ImageBGR
from imaging.detections import Detections


class FaceDetector(Protocol):
    """Finds faces in BGR frames; `name` and `version` go into every FrameResult."""

    name: str
    version: str
    licence: str
    """The terms of the weights this detector runs (logged at start-up)."""

    def detect(self, image: ImageBGR) -> Detections:
        """Faces in `image` (H×W×3 uint8 BGR), boxes in its pixels."""
        ...


class BackendConfig(BaseModel):
    """The fields every backend has; each backend sets its own calibrated defaults.

    Faces in city cameras are tiny (a median crowd face is ~21 px), so small frames are
    upscaled before detection; huge frames are capped so one 4K frame cannot stall a worker.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    backend: str = Field(description="Face detector backend (each backend narrows it).")
    model_path: Path | None = Field(None, description="Detector weights file (default: resolved).")
    score_threshold: float = Field(0.78, ge=0.0, le=1.0, description="Minimum face confidence.")
    nms_threshold: float = Field(0.4, gt=0.0, le=1.0, description="IoU above which NMS drops.")
    upscale_to_px: int = Field(
        1200, ge=64, le=8192, description="Frames whose longer side is shorter are upscaled to it."
    )
    max_upscale: float = Field(3.0, ge=1.0, le=8.0, description="Largest upscaling factor.")
    max_side_px: int = Field(
        2048, ge=64, le=8192, description="Frames whose longer side is longer are downscaled."
    )
    box_scale_wh: tuple[float, float] = Field(
        (1.1, 1.0), description="Box width/height factors (calibration to annotated faces)."
    )
    box_shift_y: float = Field(
        0.14, ge=-1.0, le=1.0, description="Box centre shift down, as a fraction of its height."
    )
    max_faces: int = Field(512, ge=1, le=10000, description="Most faces kept per frame.")
    threads: int = Field(0, ge=0, le=64, description="Inference threads (0 = the CPU share).")

    @model_validator(mode="after")
    def _bounds(self) -> BackendConfig:
        if self.upscale_to_px > self.max_side_px:
            raise ValueError("upscale_to_px must not exceed max_side_px")
        if not all(0.25 <= f <= 4.0 for f in self.box_scale_wh):
            raise ValueError(f"box_scale_wh factors must be in [0.25, 4], got {self.box_scale_wh}")
        return self


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


class WeightsMismatchError(ValueError):
    """The weights file loaded is not the configured backend's (message: one readable line)."""


@dataclass(frozen=True)
class OutputSpec:
    """What one output of a backend's network must look like: its name (None: any, matched by
    position) and the size of one axis (channels or values per anchor)."""

    name: str | None
    axis: int
    size: int


def weights_problem(
    declared: Sequence[tuple[str, Sequence[object]]], expected: Sequence[OutputSpec]
) -> str | None:
    """Why a network's declared outputs ((name, shape) in order) are not the `expected`
    ones, or None if they match. Checked at start-up, so a wrong weights file fails there
    with this reason instead of failing every frame later."""
    if len(declared) != len(expected):
        names = [name for name, _ in declared]
        return f"{len(declared)} outputs {names}, expected {len(expected)}"
    shapes = dict(declared)
    for position, spec in enumerate(expected):
        name, shape = (spec.name, shapes.get(spec.name)) if spec.name else declared[position]
        if shape is None:
            return f"no output named {spec.name!r} (has {[n for n, _ in declared]})"
        size = shape[spec.axis] if -len(shape) <= spec.axis < len(shape) else None
        if size != spec.size:
            return (
                f"output {name!r} has shape {list(shape)}, expected {spec.size} on axis {spec.axis}"
            )
    return None
