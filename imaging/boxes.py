"""Box maths shared by every detector backend and the evaluation (pure numpy).

Boxes are `xyxy` in pixels, areas (x2 − x1) × (y2 − y1) (no VOC +1 convention).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]


def iou_matrix(
    a_xyxy: npt.NDArray[np.floating], b_xyxy: npt.NDArray[np.floating]
) -> npt.NDArray[np.float64]:
    """N×M IoU of two box sets (a new float64 array; 0 where the union is empty)."""
    a = np.asarray(a_xyxy, np.float64).reshape(-1, 4)
    b = np.asarray(b_xyxy, np.float64).reshape(-1, 4)
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def nms(xyxy: F32, scores: F32, iou_threshold: float, max_keep: int) -> npt.NDArray[np.intp]:
    """Indices (into the N×4 `xyxy`) of boxes kept by greedy non-maximum suppression, best
    score first, at most `max_keep`; a box is dropped when its IoU with a kept one exceeds
    `iou_threshold`."""
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    while order.size and len(keep) < max_keep:
        best, rest = order[0], order[1:]
        keep.append(int(best))
        overlap = iou_matrix(xyxy[best : best + 1], xyxy[rest])[0]
        order = rest[overlap <= iou_threshold]
    return np.asarray(keep, dtype=np.intp)


def adjust_boxes(xyxy: F32, scale_wh: tuple[float, float], shift_y: float) -> F32:
    """N×4 boxes rescaled about their centres and moved down by `shift_y` × height (a new
    array).

    Face detectors draw tight eyebrow-to-mouth boxes; people annotating faces (and the crops
    the classifier was trained on) include the chin and some hair. Each backend's calibration,
    fitted on the training photos of the crowd set, sets these two parameters.
    """
    width = (xyxy[:, 2] - xyxy[:, 0]) * scale_wh[0]
    height = (xyxy[:, 3] - xyxy[:, 1]) * scale_wh[1]
    cx = (xyxy[:, 0] + xyxy[:, 2]) / 2
    cy = (xyxy[:, 1] + xyxy[:, 3]) / 2 + shift_y * (xyxy[:, 3] - xyxy[:, 1])
    return np.stack([cx - width / 2, cy - height / 2, cx + width / 2, cy + height / 2], axis=1)


def to_frame(xyxy: F32, input_wh: tuple[int, int], frame_wh: tuple[int, int]) -> F32:
    """N×4 boxes in pixels of a resized detector input → pixels of the original frame,
    clipped to it (a new array)."""
    factors = np.array([frame_wh[0] / input_wh[0], frame_wh[1] / input_wh[1]] * 2, np.float32)
    clipped: F32 = np.clip(xyxy * factors, 0, np.array(frame_wh * 2, np.float32))
    return clipped.astype(np.float32)
