"""`Detections`: the one results type every face detector returns.

A dataclass of arrays in the style of detection libraries: boxes `xyxy` (N×4), scores (N)
and, when the backend gives them, five facial landmarks (N×5×2), all float32 in pixels of the
frame the detector was given, with shapes checked at construction so a backend bug fails at
its source, not three stages later.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]
LANDMARKS = 5
"""Eyes, nose tip, mouth corners: the layout RetinaFace, SCRFD and CenterFace share."""


@dataclass(frozen=True)
class Detections:
    """Faces found in one frame.

    Attributes:
        xyxy: N×4 float32 boxes (x1, y1, x2, y2) in pixels of the frame.
        scores: N float32 detector confidences in [0, 1].
        landmarks: N×5×2 float32 (x, y) points, or None when the backend has none.
    """

    xyxy: F32
    scores: F32
    landmarks: F32 | None = None

    def __post_init__(self) -> None:
        n = self.xyxy.shape[0] if self.xyxy.ndim == 2 else -1
        if self.xyxy.ndim != 2 or self.xyxy.shape[1] != 4:
            raise ValueError(f"xyxy must be N×4, got shape {self.xyxy.shape}")
        if self.scores.shape != (n,):
            raise ValueError(f"scores must have shape ({n},), got {self.scores.shape}")
        if self.landmarks is not None and self.landmarks.shape != (n, LANDMARKS, 2):
            raise ValueError(
                f"landmarks must have shape ({n}, {LANDMARKS}, 2), got {self.landmarks.shape}"
            )
        arrays = [self.xyxy, self.scores] + ([] if self.landmarks is None else [self.landmarks])
        if any(a.dtype != np.float32 for a in arrays):
            raise ValueError(f"expected float32 arrays, got {[str(a.dtype) for a in arrays]}")

    def __len__(self) -> int:
        return int(self.xyxy.shape[0])

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32))

    def take(self, index: npt.NDArray[np.intp]) -> Detections:
        """The detections at `index` (new arrays, in that order)."""
        landmarks = None if self.landmarks is None else self.landmarks[index]
        return Detections(self.xyxy[index], self.scores[index], landmarks)
