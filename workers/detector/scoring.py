"""Detection metrics (pure numpy): PASCAL VOC matching at IoU 0.5, all-point AP, face
recall and precision. Used by `maskwatch evaluate pipeline` and its tests."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

F = npt.NDArray[np.floating]


def iou_matrix(a_xyxy: F, b_xyxy: F) -> npt.NDArray[np.float64]:
    """N×M IoU of two box sets (pixel boxes, x2/y2 exclusive as VOC's +1 convention is not
    used: areas are (x2 - x1) × (y2 - y1))."""
    a = np.asarray(a_xyxy, np.float64).reshape(-1, 4)
    b = np.asarray(b_xyxy, np.float64).reshape(-1, 4)
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def _greedy_match(
    pred_xyxy: F, pred_scores: F, truth_xyxy: F, iou_threshold: float
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    """VOC greedy matching in one image → (hit flag per prediction, taken flag per truth)."""
    hits = np.zeros(len(pred_scores), dtype=bool)
    taken = np.zeros(len(truth_xyxy), dtype=bool)
    if len(pred_scores) == 0 or len(truth_xyxy) == 0:
        return hits, taken
    ious = iou_matrix(pred_xyxy, truth_xyxy)
    for i in np.argsort(-np.asarray(pred_scores), kind="stable"):
        j = int(np.argmax(ious[i]))
        if ious[i, j] >= iou_threshold and not taken[j]:
            taken[j] = hits[i] = True
    return hits, taken


def match(
    pred_xyxy: F, pred_scores: F, truth_xyxy: F, iou_threshold: float = 0.5
) -> npt.NDArray[np.bool_]:
    """VOC greedy matching in one image: predictions by descending score each take the
    unmatched truth box they overlap most (IoU ≥ threshold). Returns one true-positive flag
    per prediction, in the predictions' given order."""
    return _greedy_match(pred_xyxy, pred_scores, truth_xyxy, iou_threshold)[0]


def matched_truths(
    pred_xyxy: F, pred_scores: F, truth_xyxy: F, iou_threshold: float = 0.5
) -> npt.NDArray[np.bool_]:
    """One flag per truth box: did a prediction take it in the same matching as `match`?"""
    return _greedy_match(pred_xyxy, pred_scores, truth_xyxy, iou_threshold)[1]


def average_precision(scores: F, hits: npt.NDArray[np.bool_], truth_count: int) -> float:
    """VOC all-point interpolated AP of scored predictions (pooled over images) whose
    true-positive flags are `hits`; 0 when there is no ground truth."""
    if truth_count == 0:
        return 0.0
    order = np.argsort(-np.asarray(scores), kind="stable")
    tp = np.cumsum(hits[order])
    fp = np.cumsum(~hits[order])
    recall = np.concatenate([[0.0], tp / truth_count, [1.0]])
    precision = np.concatenate([[0.0], tp / np.maximum(tp + fp, 1), [0.0]])
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    changes = np.flatnonzero(recall[1:] != recall[:-1])
    return float(np.sum((recall[changes + 1] - recall[changes]) * precision[changes + 1]))


@dataclass(frozen=True)
class PrecisionRecall:
    """Counts and rates at one operating point."""

    true_positives: int
    predictions: int
    truths: int

    @property
    def precision(self) -> float:
        return self.true_positives / self.predictions if self.predictions else 0.0

    @property
    def recall(self) -> float:
        return self.true_positives / self.truths if self.truths else 0.0


def best_recall_at_precision(
    scores: F, hits: npt.NDArray[np.bool_], truth_count: int, min_precision: float
) -> tuple[float, float]:
    """(recall, score threshold) of the highest-recall cut whose precision ≥ min_precision;
    (0, inf) if no cut reaches it. Used to tune the detector's score threshold."""
    order = np.argsort(-np.asarray(scores), kind="stable")
    tp = np.cumsum(hits[order])
    precision = tp / np.arange(1, len(order) + 1)
    ok = np.flatnonzero(precision >= min_precision)
    if ok.size == 0 or truth_count == 0:
        return 0.0, float("inf")
    best = int(ok[-1])
    return float(tp[best] / truth_count), float(np.asarray(scores)[order][best])
