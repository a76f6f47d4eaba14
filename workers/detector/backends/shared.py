"""What the ONNX backends SCRFD and CenterFace share beyond `base`: input tensors padded to a
multiple of the networks' coarsest stride, and the step from raw candidates (boxes in input
pixels, before NMS) to `Detections` in pixels of the frame (NMS, calibration, clipping).

The maths is pure numpy; `onnx_session` is the one place a runtime session is built (ONNX
Runtime is imported there, so reading configs never loads it).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from imaging.boxes import adjust_boxes, nms
from imaging.crop import ImageBGR
from imaging.detections import Detections
from workers.detector.backends.base import check_frame, detection_scale, resized
from workers.detector.backends.configs import BackendConfig
from workers.detector.model_files import load_backend_model

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


class OnnxFaceDetector:
    """An anchor-free ONNX face detector: one session, reused for every frame.

    A subclass names itself (`name`, `licence`) and says how a padded RGB input becomes
    tensors (`to_input`) and how the network's outputs decode into candidates (`decode`);
    scaling, padding, candidate selection, NMS and calibration are the same for all.
    """

    name: str
    licence: str

    def __init__(self, config: BackendConfig) -> None:
        model = load_backend_model(self.name, config.model_path)
        self.version = hashlib.sha256(model).hexdigest()[:12]
        self.config = config
        self._session = onnx_session(model, config.threads)
        self._input = self._session.get_inputs()[0].name

    def to_input(self, rgb: npt.NDArray[np.uint8]) -> F32:
        """The network's 1×3×H×W input tensor for a padded H×W×3 RGB image."""
        raise NotImplementedError

    def decode(
        self, rgb: npt.NDArray[np.uint8], outputs: list[npt.NDArray[np.float32]]
    ) -> tuple[F32, F32, F32]:
        """The network's outputs → (N×4 boxes, N scores, N×5×2 landmarks) in input pixels."""
        raise NotImplementedError

    def output_names(self) -> list[str] | None:
        """Outputs to fetch, in the order `decode` takes them (None: all, as declared)."""
        return None

    def candidates(self, image: ImageBGR) -> Candidates:
        """Every decoded box at or above the score threshold, before NMS (for calibration)."""
        scale = detection_scale((image.shape[1], image.shape[0]), self.config)
        rgb = padded_rgb(image, scale)
        outputs = self._session.run(self.output_names(), {self._input: self.to_input(rgb)})
        xyxy, scores, points = self.decode(rgb, outputs)
        best = top_candidates(scores, self.config.score_threshold)
        return Candidates(xyxy[best], scores[best], points[best], scale)

    def detect(self, image: ImageBGR) -> Detections:
        """Faces in an H×W×3 uint8 BGR frame; boxes and landmarks in its pixels."""
        frame_wh = check_frame(image)
        return to_detections(self.candidates(image), frame_wh, self.config)
