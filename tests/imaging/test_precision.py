"""Average precision on hand-computed rankings."""

from __future__ import annotations

import numpy as np
import pytest

from imaging.precision import average_precision


@pytest.mark.parametrize(
    ("truth", "scores", "expected_ap"),
    [
        ([1, 1, 0, 0], [0.9, 0.8, 0.2, 0.1], 1.0),  # perfect ranking
        ([0, 0, 1, 1], [0.9, 0.8, 0.2, 0.1], 0.5),  # worst ranking: the envelope is 2/4 everywhere
        ([1, 0, 1, 0], [0.9, 0.8, 0.7, 0.1], 0.5 * 1.0 + 0.5 * (2 / 3)),  # interleaved
    ],
)
def test_average_precision_all_point(
    truth: list[int], scores: list[float], expected_ap: float
) -> None:
    hits = np.array(truth, bool)
    assert average_precision(np.array(scores), hits, int(hits.sum())) == pytest.approx(expected_ap)
