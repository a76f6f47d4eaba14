"""SCRFD-2.5G with keypoints (InsightFace), run from ONNX on CPU. Opt-in: InsightFace
releases these weights for non-commercial research only.

The network is anchor-free in effect: at strides 8, 16 and 32 every feature-map cell holds
two anchors with the same centre (x·s, y·s) (no +0.5 offset), and for each it predicts a
sigmoid face score, distances (left, top, right, bottom) from the centre to the box edges,
and five landmark offsets, all in units of the stride. Decoding is one broadcast per stride.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import numpy.typing as npt

from workers.detector.backends.shared import (
    F32,
    OnnxFaceDetector,
)

STRIDES = (8, 16, 32)
ANCHORS_PER_CELL = 2
OUTPUT_NAMES = [f"{kind}_{stride}" for kind in ("score", "bbox", "kps") for stride in STRIDES]
LICENCE = (
    "SCRFD-2.5G weights by InsightFace: non-commercial research use only "
    "(package code Apache-2.0); opt-in, not for a city deployment without a licence"
)


@lru_cache(maxsize=16)
def anchor_centres(height: int, width: int, stride: int) -> F32:
    """(H/s·W/s·2)×2 anchor centres (x, y) in input pixels, in the network's output order
    (cells row by row, two consecutive anchors per cell). Cached and read-only."""
    ys, xs = np.mgrid[: height // stride, : width // stride]
    centres = np.stack([xs, ys], axis=-1).reshape(-1, 2).astype(np.float32) * stride
    out = np.repeat(centres, ANCHORS_PER_CELL, axis=0)
    out.setflags(write=False)
    return out


def decode_level(
    scores: F32,
    distances: F32,
    keypoints: F32,
    input_hw: tuple[int, int],
    stride: int,
    score_threshold: float,
) -> tuple[F32, F32, F32]:
    """One stride's outputs (N scores, N×4 distances, N×10 keypoint offsets, in stride
    units) → the candidates at or above `score_threshold`: (M×4 xyxy, M scores, M×5×2
    landmarks), in input pixels (new arrays).

    Raises ValueError if N is not the anchor count of an `input_hw` input at this stride.
    """
    centres = anchor_centres(input_hw[0], input_hw[1], stride)
    if scores.shape != (len(centres),):
        raise ValueError(f"stride {stride}: expected {len(centres)} scores, got {scores.shape}")
    keep = np.flatnonzero(scores >= score_threshold)
    at = centres[keep]
    edges = distances[keep] * stride
    xyxy = np.concatenate([at - edges[:, :2], at + edges[:, 2:]], axis=1)
    landmarks = at[:, None, :] + keypoints[keep].reshape(-1, 5, 2) * stride
    return xyxy.astype(np.float32), scores[keep], landmarks.astype(np.float32)


def decode(
    outputs: list[F32], input_hw: tuple[int, int], score_threshold: float
) -> tuple[F32, F32, F32]:
    """The network's nine outputs (score_8/16/32, bbox_8/16/32, kps_8/16/32, batch 1) →
    all candidates over the three strides, as in `decode_level`."""
    levels = [
        decode_level(
            outputs[i][0, :, 0],
            outputs[i + 3][0],
            outputs[i + 6][0],
            input_hw,
            stride,
            score_threshold,
        )
        for i, stride in enumerate(STRIDES)
    ]
    xyxy, scores, landmarks = (np.concatenate(part) for part in zip(*levels, strict=True))
    return xyxy, scores, landmarks


def to_input(rgb: npt.NDArray[np.uint8]) -> F32:
    """1×3×H×W float32, (pixel − 127.5) / 128, as InsightFace trained it."""
    tensor = (rgb.astype(np.float32) - 127.5) / 128.0
    return np.ascontiguousarray(tensor.transpose(2, 0, 1)[None])


class Scrfd(OnnxFaceDetector):
    """The SCRFD-2.5G detector."""

    name = "scrfd-2.5g"
    licence = LICENCE

    def to_input(self, rgb: npt.NDArray[np.uint8]) -> F32:
        return to_input(rgb)

    def output_names(self) -> list[str] | None:
        return list(OUTPUT_NAMES)

    def decode(
        self, rgb: npt.NDArray[np.uint8], outputs: list[npt.NDArray[np.float32]]
    ) -> tuple[F32, F32, F32]:
        return decode(outputs, rgb.shape[:2], self.config.score_threshold)


Detector = Scrfd
