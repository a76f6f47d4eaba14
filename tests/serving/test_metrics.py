"""Classification metrics and the precision-recall helpers of the evaluation command."""

from __future__ import annotations

import numpy as np
import pytest

from serving.metrics import classification_report, confusion_matrix


def test_confusion_matrix_rows_are_truth() -> None:
    truth = np.array([0, 0, 1, 1, 1])
    predicted = np.array([0, 1, 1, 1, 0])
    assert confusion_matrix(truth, predicted).tolist() == [[1, 1], [1, 2]]


def test_report_matches_hand_computed_values() -> None:
    truth = np.array([0, 0, 0, 0, 1, 1])
    predicted = np.array([0, 0, 0, 1, 1, 0])
    report = classification_report(truth, predicted)
    with_mask = report["per_class"]["with_mask"]
    assert with_mask["precision"] == pytest.approx(3 / 4)
    assert with_mask["recall"] == pytest.approx(3 / 4)
    without = report["per_class"]["without_mask"]
    assert without["precision"] == pytest.approx(1 / 2)
    assert without["f1"] == pytest.approx(1 / 2)
    assert report["macro_f1"] == pytest.approx((0.75 + 0.5) / 2)
    assert report["accuracy"] == pytest.approx(4 / 6)


def test_report_of_a_class_never_predicted_is_zero_not_nan() -> None:
    report = classification_report(np.array([0, 1]), np.array([0, 0]))
    assert report["per_class"]["without_mask"] == {
        "precision": 0.0,
        "recall": 0.0,
        "f1": 0.0,
        "support": 1,
    }
