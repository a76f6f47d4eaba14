"""Average precision, written once for the classifier and the detection evaluation.

All-point interpolated AP (PASCAL VOC 2010+): the area under the monotone envelope of the
precision–recall curve of predictions ranked by score.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


def precision_recall_curve(
    scores: npt.NDArray[np.floating], hits: npt.NDArray[np.bool_], truth_count: int
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Precision and recall after each prediction, highest score first (new arrays).

    `hits[i]` says whether prediction i is a true positive; `truth_count` is the number of
    positives there are (recall's denominator; at least one is assumed when it is 0).
    """
    order = np.argsort(-np.asarray(scores), kind="stable")
    true_positives = np.cumsum(np.asarray(hits)[order]).astype(np.float64)
    precision = true_positives / np.arange(1, len(order) + 1)
    recall = true_positives / max(truth_count, 1)
    return precision, recall


def average_precision(
    scores: npt.NDArray[np.floating], hits: npt.NDArray[np.bool_], truth_count: int
) -> float:
    """All-point interpolated AP of scored predictions; 0 when there is no positive."""
    if truth_count == 0 or len(hits) == 0:
        return 0.0
    precision, recall = precision_recall_curve(scores, hits, truth_count)
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    steps = np.diff(np.concatenate([[0.0], recall]))
    return float(np.sum(steps * envelope))
