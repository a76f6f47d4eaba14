"""What the ONNX backends SCRFD and CenterFace share beyond `base`: input tensors padded to a
multiple of the networks' coarsest stride, and the step from raw candidates (boxes in input
pixels, before NMS) to `Detections` in pixels of the frame (NMS, calibration, clipping).

The maths is pure numpy; `onnx_session` is the one place a runtime session is built (ONNX
Runtime is imported there, so reading configs never loads it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from imaging.boxes import adjust_boxes, nms
from imaging.crop import ImageBGR
from imaging.detections import Detections
from workers.detector.backends.base import BackendConfig, resized

if TYPE_CHECKING:
    import onnxruntime as ort

F32 = npt.NDArray[np.float32]
PAD_MULTIPLE_PX = 32
PRE_NMS_TOP_K = 5000


def padded_rgb(image: ImageBGR, scale: float) -> npt.NDArray[np.uint8]:
    """The frame resized by `scale`, converted to RGB and zero-padded at the bottom/right to
    multiples of 32 px (the networks' coarsest stride), as a new H×W×3 uint8 array.

    Padding instead of stretching keeps the boxes' pixel scale exactly `scale`.
    """
    frame = resized(image, scale)
    height, width = frame.shape[:2]
    padded_h = -(-height // PAD_MULTIPLE_PX) * PAD_MULTIPLE_PX
    padded_w = -(-width // PAD_MULTIPLE_PX) * PAD_MULTIPLE_PX
    padded = np.zeros((padded_h, padded_w, 3), np.uint8)
    padded[:height, :width] = frame[..., ::-1]
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


def to_detections(
    found: Candidates, frame_wh: tuple[int, int], config: BackendConfig
) -> Detections:
    """Candidates → NMS, back to the frame's pixels, calibrated (`box_scale_wh`,
    `box_shift_y`) and clipped to the frame."""
    if len(found.scores) == 0:
        return Detections.empty()
    kept = nms(found.xyxy, found.scores, config.nms_threshold, config.max_faces)
    bounds = np.array(frame_wh * 2, dtype=np.float32)
    boxes = adjust_boxes(found.xyxy[kept] / found.scale, config.box_scale_wh, config.box_shift_y)
    xyxy = np.clip(boxes, 0, bounds).astype(np.float32)
    landmarks = None
    if found.landmarks is not None:
        landmarks = (found.landmarks[kept] / found.scale).astype(np.float32)
    return Detections(xyxy, found.scores[kept].astype(np.float32), landmarks)


def onnx_session(model: bytes, threads: int) -> ort.InferenceSession:
    """A CPU session over `model` (threads 0 = the runtime's default)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3  # the published graphs carry unused initializers
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    return ort.InferenceSession(model, sess_options=options, providers=["CPUExecutionProvider"])
