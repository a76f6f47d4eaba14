"""What the ONNX backends SCRFD and CenterFace share beyond `base`: the recall levers of their
config (tiles, flip), input tensors padded to a multiple of the networks' coarsest stride, the
check that the loaded weights are the backend's, and the step from raw candidates (boxes in
input pixels, pooled over the views, before NMS) to `Detections` in pixels of the frame
(NMS, calibration, clipping).

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
from imaging.views import Tile, decided_here, mirror_boxes, mirror_landmarks, tiles
from workers.detector.backends.base import (
    OutputSpec,
    WeightsMismatchError,
    check_frame,
    detection_scale,
    resized,
    weights_problem,
)
from workers.detector.backends.configs import OnnxBackendConfig
from workers.detector.model_files import SOURCES, ModelNotFoundError, load_backend_model

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
    found: Candidates, frame_wh: tuple[int, int], config: OnnxBackendConfig
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

    A subclass names itself (`name`, `licence`, the `outputs` its weights must have) and says
    how a padded RGB input becomes tensors (`to_input`) and how the network's outputs decode
    into candidates (`decode`); scaling, views, padding, candidate selection, NMS and
    calibration are the same for all.
    """

    name: str
    licence: str
    outputs: tuple[OutputSpec, ...]

    def __init__(self, config: OnnxBackendConfig) -> None:
        self.config = config
        try:
            model = load_backend_model(self.name, config.model_path)
            self._session = onnx_session(model, config.threads)
        except ModelNotFoundError:
            raise
        except Exception as error:  # onnx, protobuf and ORT errors: not a model of this layout
            raise self._mismatch(str(error).splitlines()[0][:200]) from error
        declared = [(o.name, list(o.shape)) for o in self._session.get_outputs()]
        problem = weights_problem(declared, self.outputs)
        if problem is not None:
            raise self._mismatch(problem)
        self.version = hashlib.sha256(model).hexdigest()[:12]
        self._input = self._session.get_inputs()[0].name

    def _mismatch(self, problem: str) -> WeightsMismatchError:
        source = SOURCES[self.name]
        path = self.config.model_path or source.cache_file
        return WeightsMismatchError(
            f"detector weights {path} are not {self.name}'s ({problem}); expected "
            f"{source.member} of {source.package} {source.version} (sha256 "
            f"{source.model_sha256}): `python -m workers.detector.model_files --backend "
            f"{self.name}` fetches it"
        )

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

    def _view(self, frame: ImageBGR, tile: Tile, mirrored: bool) -> tuple[F32, F32, F32]:
        """Candidates of one view (a tile of the scaled frame, maybe mirrored), in pixels of
        the scaled frame, only those the tile decides."""
        x1, y1, x2, y2 = tile.window
        view = frame[y1:y2, x1:x2]
        rgb = padded_rgb(view[:, ::-1] if mirrored else view, 1.0)
        outputs = self._session.run(self.output_names(), {self._input: self.to_input(rgb)})
        xyxy, scores, points = self.decode(rgb, outputs)
        if mirrored:
            xyxy, points = mirror_boxes(xyxy, x2 - x1), mirror_landmarks(points, x2 - x1)
        origin = np.array([x1, y1], np.float32)
        xyxy, points = xyxy + np.tile(origin, 2), points + origin
        mine = decided_here(xyxy, tile)
        return xyxy[mine], scores[mine], points[mine]

    def candidates(self, image: ImageBGR) -> Candidates:
        """Every decoded box at or above the score threshold, pooled over the views (tiles,
        mirror), before NMS (for calibration)."""
        scale = detection_scale((image.shape[1], image.shape[0]), self.config)
        frame = resized(image, scale)
        frame_wh = (frame.shape[1], frame.shape[0])
        tile_px, overlap_px = self.config.tile_px, self.config.tile_overlap_px
        views = tiles(frame_wh, tile_px or max(frame_wh), overlap_px if tile_px else 0)
        parts = [
            self._view(frame, tile, mirrored)
            for tile in views
            for mirrored in (False, True)[: 1 + self.config.flip]
        ]
        xyxy, scores, points = (np.concatenate(part) for part in zip(*parts, strict=True))
        best = top_candidates(scores, self.config.score_threshold)
        return Candidates(xyxy[best], scores[best], points[best], scale)

    def detect(self, image: ImageBGR) -> Detections:
        """Faces in an H×W×3 uint8 BGR frame; boxes and landmarks in its pixels."""
        frame_wh = check_frame(image)
        return to_detections(self.candidates(image), frame_wh, self.config)
