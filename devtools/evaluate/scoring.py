"""Detection metrics (pure numpy): PASCAL VOC matching at IoU 0.5, face recall and precision
(IoU and AP themselves live in `imaging`). Used by `maskwatch evaluate pipeline` and its tests."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from imaging.boxes import iou_matrix

F = npt.NDArray[np.floating]


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
