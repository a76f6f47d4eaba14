"""Cross-frame crop batching bounds and the offset tracker's commit points."""

from __future__ import annotations

import numpy as np
import pytest

from workers.detector.batching import CropBatcher, OffsetTracker, concat_crops


def test_batch_due_when_full() -> None:
    batcher: CropBatcher[str] = CropBatcher(max_crops=5, max_wait_s=10.0)
    batcher.add("a", 3, now_s=0.0)
    assert not batcher.due(0.1)
    batcher.add("b", 2, now_s=0.1)
    assert batcher.due(0.1) and batcher.crops == 5
    assert batcher.take() == ["a", "b"]
    assert len(batcher) == 0 and batcher.crops == 0 and not batcher.due(100.0)


def test_batch_due_when_oldest_waited_long_enough() -> None:
    batcher: CropBatcher[str] = CropBatcher(max_crops=100, max_wait_s=0.05)
    assert batcher.wait_left_s(0.0) == float("inf")  # empty: nothing to wait for
    batcher.add("a", 1, now_s=1.0)
    batcher.add("b", 1, now_s=1.04)
    assert batcher.wait_left_s(1.02) == pytest.approx(0.03)
    assert not batcher.due(1.049)
    assert batcher.due(1.05)  # measured from the oldest frame, not the newest


def test_discard_keeps_the_rest_and_their_counts() -> None:
    batcher: CropBatcher[tuple[int, int]] = CropBatcher(max_crops=100, max_wait_s=1.0)
    for partition, crops in [(0, 3), (1, 4), (0, 5)]:
        batcher.add((partition, crops), crops, now_s=0.0)
    dropped = batcher.discard(lambda item: item[0] == 0, now_s=0.0)
    assert dropped == [(0, 3), (0, 5)] and batcher.crops == 4 and len(batcher) == 1


@pytest.mark.parametrize(("max_crops", "max_wait_s"), [(0, 1.0), (1, -0.1)])
def test_batcher_rejects_unbounded(max_crops: int, max_wait_s: float) -> None:
    with pytest.raises(ValueError):
        CropBatcher(max_crops=max_crops, max_wait_s=max_wait_s)


def test_concat_crops_empty_has_the_crop_shape() -> None:
    assert concat_crops([], 128).shape == (0, 128, 128, 3)
    parts = [np.zeros((2, 8, 8, 3), np.uint8), np.ones((1, 8, 8, 3), np.uint8)]
    assert concat_crops(parts, 8).shape == (3, 8, 8, 3)


def test_commit_point_stops_at_first_unfinished_frame() -> None:
    tracker: OffsetTracker[str] = OffsetTracker()
    for offset in (10, 11, 12):
        tracker.start("p0", offset)
    tracker.done("p0", 11)  # finished out of order
    assert tracker.committable() == {}  # 10 is not done: committing 12 could lose it
    tracker.done("p0", 10)
    assert tracker.committable() == {"p0": 12}
    tracker.committed({"p0": 12})
    assert tracker.committable() == {}  # nothing new
    assert tracker.in_flight() == 1
    tracker.done("p0", 12)
    assert tracker.committable() == {"p0": 13}


def test_partitions_are_independent_and_forgettable() -> None:
    tracker: OffsetTracker[str] = OffsetTracker()
    tracker.start("p0", 0)
    tracker.start("p1", 5)
    tracker.done("p1", 5)
    tracker.done("p9", 1)  # unknown partition (revoked meanwhile): ignored
    assert tracker.committable() == {"p1": 6}
    tracker.forget(["p0"])
    assert tracker.in_flight() == 0 and tracker.committable() == {"p1": 6}
