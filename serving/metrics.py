"""Classification metrics (pure numpy): per-class precision / recall / F1 and the confusion
matrix, in `schemas.model_server.CLASSES` order."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from schemas.model_server import CLASSES


def confusion_matrix(
    truth: npt.NDArray[np.integer], predicted: npt.NDArray[np.integer], classes: int = 2
) -> npt.NDArray[np.int64]:
    """classes×classes counts; rows are the true class, columns the predicted one."""
    matrix = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(truth, np.int64), np.asarray(predicted, np.int64)), 1)
    return matrix


def classification_report(
    truth: npt.NDArray[np.integer], predicted: npt.NDArray[np.integer]
) -> dict[str, Any]:
    """Precision, recall and F1 per class, their macro mean, accuracy and the confusion
    matrix. A class with no predictions (or no samples) gets precision (recall) 0."""
    matrix = confusion_matrix(truth, predicted, len(CLASSES))
    per_class = {}
    for index, name in enumerate(CLASSES):
        tp = float(matrix[index, index])
        predicted_n = float(matrix[:, index].sum())
        actual_n = float(matrix[index, :].sum())
        precision = tp / predicted_n if predicted_n else 0.0
        recall = tp / actual_n if actual_n else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[name] = {
            "precision": precision,
            "recall": recall,
            "f1": f1,
            "support": int(actual_n),
        }
    total = int(matrix.sum())
    return {
        "per_class": per_class,
        "macro_f1": float(np.mean([c["f1"] for c in per_class.values()])),
        "accuracy": float(np.trace(matrix) / total) if total else 0.0,
        "confusion_matrix": matrix.tolist(),
        "samples": total,
    }
