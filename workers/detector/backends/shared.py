"""What the ONNX face-detector backends have in common: config fields, input tensors padded
to a multiple of the network's coarsest stride, and the step from raw candidates (boxes in
input pixels) to `Detections` in pixels of the frame (NMS, calibration, clipping).

The maths is pure numpy; `onnx_session` is the one place a runtime session is built.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import onnxruntime as ort
from pydantic import BaseModel, ConfigDict, Field, model_validator

from serving.crop import ImageBGR
from workers.detector.detectors import Detections, adjust_boxes
from workers.detector.retinaface_onnx import nms

F32 = npt.NDArray[np.float32]
PAD_MULTIPLE_PX = 32
PRE_NMS_TOP_K = 5000


class OnnxBackendConfig(BaseModel):
    """Fields every ONNX backend has; each backend subclasses it with its own `backend`
    literal and the defaults calibrated for it on the crowd train + val photos."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model_path: Path | None = Field(
        None, description="ONNX weights (published or converted; default: the user cache)."
    )
    score_threshold: float = Field(0.5, ge=0.0, le=1.0, description="Minimum face confidence.")
    nms_threshold: float = Field(0.4, gt=0.0, le=1.0, description="IoU above which NMS drops.")
    upscale_to_px: int = Field(
        1000, ge=64, le=8192, description="Frames whose longer side is shorter are upscaled to it."
    )
    max_upscale: float = Field(3.0, ge=1.0, le=8.0, description="Largest upscaling factor.")
    max_side_px: int = Field(
        1280, ge=64, le=8192, description="Frames whose longer side is longer are downscaled to it."
    )
    box_scale_wh: tuple[float, float] = Field(
        (1.0, 1.0), description="Box width/height factors (calibration to annotated faces)."
    )
    box_shift_y: float = Field(
        0.0, ge=-1.0, le=1.0, description="Box centre shift down, as a fraction of its height."
    )
    max_faces: int = Field(512, ge=1, le=10000, description="Most faces kept per frame.")
    threads: int = Field(0, ge=0, le=64, description="Inference threads (0 = runtime default).")

    @model_validator(mode="after")
    def _bounds(self) -> OnnxBackendConfig:
        if self.upscale_to_px > self.max_side_px:
            raise ValueError("upscale_to_px must not exceed max_side_px")
        if not all(0.25 <= f <= 4.0 for f in self.box_scale_wh):
            raise ValueError(f"box_scale_wh factors must be in [0.25, 4], got {self.box_scale_wh}")
        return self


def padded_rgb(image: ImageBGR, scale: float) -> npt.NDArray[np.uint8]:
    """The frame resized by `scale`, converted to RGB and zero-padded at the bottom/right to
    multiples of 32 px (the networks' coarsest stride), as a new H×W×3 uint8 array.

    Padding instead of stretching keeps the boxes' pixel scale exactly `scale`.
    """
    resized = image
    if scale != 1.0:
        interpolation = cv2.INTER_LINEAR if scale > 1.0 else cv2.INTER_AREA
        resized = np.asarray(
            cv2.resize(image, None, fx=scale, fy=scale, interpolation=interpolation), np.uint8
        )
    height, width = resized.shape[:2]
    padded = np.zeros(
        (
            -(-height // PAD_MULTIPLE_PX) * PAD_MULTIPLE_PX,
            -(-width // PAD_MULTIPLE_PX) * PAD_MULTIPLE_PX,
            3,
        ),
        np.uint8,
    )
    padded[:height, :width] = resized[..., ::-1]
    return padded


def top_candidates(scores: F32, score_threshold: float) -> npt.NDArray[np.intp]:
    """Indices of scores ≥ threshold, at most PRE_NMS_TOP_K of them (the best)."""
    candidates = np.flatnonzero(scores >= score_threshold)
    if candidates.size > PRE_NMS_TOP_K:
        top = np.argpartition(-scores[candidates], PRE_NMS_TOP_K)[:PRE_NMS_TOP_K]
        candidates = candidates[top]
    return candidates


@dataclass(frozen=True)
class Candidates:
    """A backend's decoded boxes before NMS, in pixels of the resized input.

    Attributes:
        xyxy: N×4 float32. scores: N float32. landmarks: N×5×2 float32 (x, y) or None.
        scale: the factor the frame was resized by (input px = frame px × scale).
    """

    xyxy: F32
    scores: F32
    landmarks: F32 | None
    scale: float


def check_image(image: ImageBGR) -> None:
    """ValueError unless `image` is H×W×3."""
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be H×W×3, got shape {image.shape}")


def to_detections(
    found: Candidates, original_wh: tuple[int, int], config: OnnxBackendConfig
) -> Detections:
    """Candidates → NMS, back to the frame's pixels, calibrated (`box_scale_wh`,
    `box_shift_y`) and clipped to the frame."""
    if len(found.scores) == 0:
        return Detections.empty()
    kept = nms(found.xyxy, found.scores, config.nms_threshold, config.max_faces)
    bounds = np.array(original_wh * 2, dtype=np.float32)
    boxes = adjust_boxes(found.xyxy[kept] / found.scale, config.box_scale_wh, config.box_shift_y)
    xyxy = np.clip(boxes, 0, bounds).astype(np.float32)
    landmarks = None
    if found.landmarks is not None:
        landmarks = (found.landmarks[kept] / found.scale).astype(np.float32)
    return Detections(xyxy, found.scores[kept].astype(np.float32), landmarks)


def onnx_session(model: bytes, threads: int) -> ort.InferenceSession:
    """A CPU session over `model` (threads 0 = the runtime's default)."""
    options = ort.SessionOptions()
    options.log_severity_level = 3  # the published graphs carry unused initializers
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    return ort.InferenceSession(model, sess_options=options, providers=["CPUExecutionProvider"])
