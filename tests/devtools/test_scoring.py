"""VOC matching, all-point AP, recall at a precision floor."""

from __future__ import annotations

import numpy as np
import pytest

from devtools.evaluate.scoring import PrecisionRecall, best_recall_at_precision, match
from imaging.boxes import iou_matrix
from imaging.precision import average_precision


def test_iou_matrix() -> None:
    a = np.array([[0, 0, 10, 10]], float)
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30], [0, 0, 0, 0]], float)
    np.testing.assert_allclose(iou_matrix(a, b), [[1.0, 1 / 3, 0.0, 0.0]])


@pytest.mark.parametrize(
    ("pred", "scores", "truth", "hits"),
    [
        ([], [], [[0, 0, 10, 10]], []),  # no predictions
        ([[0, 0, 10, 10]], [0.9], [], [False]),  # no truth: a false positive
        ([[0, 0, 10, 10], [1, 0, 11, 10]], [0.8, 0.9], [[0, 0, 10, 10]], [False, True]),
        # ↑ duplicate: the higher score takes the truth, the other is a false positive
        ([[0, 0, 10, 10]], [0.9], [[6, 0, 16, 10]], [False]),  # IoU 0.25 < 0.5
    ],
)
def test_match(pred: list, scores: list, truth: list, hits: list) -> None:  # type: ignore[type-arg]
    out = match(
        np.array(pred, float).reshape(-1, 4),
        np.array(scores, float),
        np.array(truth, float).reshape(-1, 4),
    )
    assert out.tolist() == hits


@pytest.mark.parametrize(
    ("scores", "hits", "truths", "ap"),
    [
        ([0.9, 0.8], [True, True], 2, 1.0),  # perfect
        ([0.9, 0.8], [True, True], 4, 0.5),  # half the faces never found
        ([0.9, 0.8, 0.7], [False, True, True], 2, 2 / 3),  # a false positive ranked first
        ([0.9, 0.8, 0.7], [True, False, True], 2, 0.5 + 0.5 * 2 / 3),  # interpolated dip
        ([], [], 3, 0.0),  # nothing predicted
        ([0.5], [False], 0, 0.0),  # no ground truth
    ],
)
def test_average_precision(scores: list, hits: list, truths: int, ap: float) -> None:  # type: ignore[type-arg]
    result = average_precision(np.array(scores, float), np.array(hits, bool), truths)
    assert result == pytest.approx(ap)


def test_best_recall_at_precision() -> None:
    scores = np.array([0.9, 0.8, 0.7, 0.6])
    hits = np.array([True, True, False, True])
    assert best_recall_at_precision(scores, hits, 4, 0.9) == (0.5, 0.8)
    assert best_recall_at_precision(scores, hits, 4, 0.7) == (0.75, 0.6)
    assert best_recall_at_precision(scores, ~hits & False, 4, 0.5) == (0.0, float("inf"))


def test_precision_recall_of_empty_sets_is_zero() -> None:
    point = PrecisionRecall(0, 0, 0)
    assert point.precision == 0.0 and point.recall == 0.0
    assert PrecisionRecall(3, 4, 6).precision == 0.75
