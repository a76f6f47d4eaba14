"""Cross-frame crop batching and offset tracking (pure; times are passed in).

One gRPC call per crowded frame wastes the model server's batch parallelism, one per face is
worse; so crops of consecutive frames are pooled until the batch is full or its oldest frame
has waited long enough. Both bounds keep the worker's memory and latency bounded. Offsets of a
partition are committed only up to the first frame whose result is not yet acknowledged.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import numpy as np
import numpy.typing as npt

T = TypeVar("T")
P = TypeVar("P", bound=Hashable)


@dataclass
class CropBatcher(Generic[T]):
    """Frames waiting for classification, with their crop counts.

    `due` once the pooled crops reach `max_crops` or the oldest frame has waited
    `max_wait_s`; the caller then `take`s everything. A single frame with more faces than
    `max_crops` is classified in several calls (see `chunks`).
    """

    max_crops: int
    max_wait_s: float
    _items: list[tuple[T, int]] = field(default_factory=list)
    _crops: int = 0
    _oldest_s: float | None = None

    def __post_init__(self) -> None:
        if self.max_crops < 1 or self.max_wait_s < 0:
            raise ValueError(f"need max_crops >= 1 and max_wait_s >= 0, got {self}")

    def __len__(self) -> int:
        return len(self._items)

    @property
    def crops(self) -> int:
        return self._crops

    def add(self, item: T, crops: int, now_s: float) -> None:
        if self._oldest_s is None:
            self._oldest_s = now_s
        self._items.append((item, crops))
        self._crops += crops

    def due(self, now_s: float) -> bool:
        return bool(self._items) and (
            self._crops >= self.max_crops or self.wait_left_s(now_s) <= 0.0
        )

    def wait_left_s(self, now_s: float) -> float:
        """Seconds until the oldest frame's wait is over (inf when empty)."""
        if self._oldest_s is None:
            return float("inf")
        return max(self.max_wait_s - (now_s - self._oldest_s), 0.0)

    def take(self) -> list[T]:
        items = [item for item, _ in self._items]
        self._items, self._crops, self._oldest_s = [], 0, None
        return items

    def discard(self, drop: Callable[[T], bool], now_s: float) -> list[T]:
        """Remove (and return) the items `drop` selects, e.g. frames of revoked partitions."""
        dropped = [item for item, _ in self._items if drop(item)]
        kept = [(item, n) for item, n in self._items if not drop(item)]
        self._items, self._crops = kept, sum(n for _, n in kept)
        if not kept:
            self._oldest_s = None
        return dropped


def concat_crops(parts: list[npt.NDArray[np.uint8]], size_px: int) -> npt.NDArray[np.uint8]:
    """One N×S×S×3 batch of all parts (a copy); an empty batch for no crops."""
    if not parts:
        return np.zeros((0, size_px, size_px, 3), np.uint8)
    return np.concatenate(parts, axis=0)


@dataclass
class OffsetTracker(Generic[P]):
    """In-flight offsets per partition; what can be committed without skipping a frame.

    A partition's commit point is the first offset not yet done (Kafka commits name the next
    offset to read), so a frame finished early never lets an older unfinished one be skipped
    after a crash.
    """

    _open: dict[P, dict[int, bool]] = field(default_factory=dict)
    _committed: dict[P, int] = field(default_factory=dict)

    def start(self, partition: P, offset: int) -> None:
        self._open.setdefault(partition, {})[offset] = False

    def done(self, partition: P, offset: int) -> None:
        offsets = self._open.get(partition)
        if offsets is not None and offset in offsets:
            offsets[offset] = True

    def in_flight(self) -> int:
        return sum(1 for offsets in self._open.values() for done in offsets.values() if not done)

    def committable(self) -> dict[P, int]:
        """Next-offset-to-read per partition that advanced since the last `committed`."""
        out: dict[P, int] = {}
        for partition, offsets in self._open.items():
            point = None
            for offset, done in offsets.items():
                if not done:
                    break
                point = offset + 1
            if point is not None and point > self._committed.get(partition, -1):
                out[partition] = point
        return out

    def committed(self, points: dict[P, int]) -> None:
        """Record a successful commit and forget the offsets it covers."""
        for partition, point in points.items():
            self._committed[partition] = point
            offsets = self._open.get(partition, {})
            for offset in [o for o in offsets if o < point]:
                del offsets[offset]

    def forget(self, partitions: list[P]) -> None:
        """Drop partitions this worker no longer owns (their new owner re-reads them)."""
        for partition in partitions:
            self._open.pop(partition, None)
            self._committed.pop(partition, None)
