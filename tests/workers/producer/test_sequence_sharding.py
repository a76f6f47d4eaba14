"""Sequence numbers (strictly increasing across reconnects and restarts) and sharding."""

from __future__ import annotations

import itertools
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workers.producer.sequence import SequenceGenerator, to_microseconds
from workers.producer.sharding import ShardingError, owned, replica_for, resolve_replica

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def test_microseconds_exact() -> None:
    assert to_microseconds(datetime(1970, 1, 1, tzinfo=UTC)) == 0
    assert to_microseconds(T0 + timedelta(microseconds=7)) == int(T0.timestamp()) * 10**6 + 7


@given(st.lists(st.integers(min_value=-5_000_000, max_value=5_000_000), min_size=1, max_size=50))
def test_strictly_increasing_even_when_the_clock_steps_back(offsets_us: list[int]) -> None:
    generator = SequenceGenerator()
    numbers = [generator.next(T0 + timedelta(microseconds=o)) for o in offsets_us]
    assert all(b > a for a, b in itertools.pairwise(numbers))


def test_restart_continues_above_the_previous_process() -> None:
    before = SequenceGenerator()
    last = [before.next(T0 + timedelta(milliseconds=i)) for i in range(5)][-1]
    # a new process (no state) a second later, as after a crash or a re-shard
    after = SequenceGenerator()
    assert after.next(T0 + timedelta(seconds=1)) > last


def test_floor_guards_against_a_clock_behind_a_known_high_water_mark() -> None:
    generator = SequenceGenerator(floor_us=to_microseconds(T0))
    assert generator.next(T0 - timedelta(hours=1)) == to_microseconds(T0) + 1


def test_every_camera_has_exactly_one_replica_and_load_spreads() -> None:
    cameras = [f"cam-{i}" for i in range(600)]
    shares = [owned(cameras, index, 3) for index in range(3)]
    assert sorted(c for share in shares for c in share) == sorted(cameras)
    assert all(150 <= len(share) <= 250 for share in shares), [len(s) for s in shares]


def test_scaling_up_moves_only_the_cameras_it_must() -> None:
    cameras = [f"cam-{i}" for i in range(1000)]
    moved = Counter(replica_for(c, 4) != replica_for(c, 5) for c in cameras)
    # rendezvous hashing: ~1/5 move (modulo hashing would move ~4/5)
    assert 120 <= moved[True] <= 300, moved
    assert all(replica_for(c, 5) == 4 for c in cameras if replica_for(c, 4) != replica_for(c, 5))


def test_assignment_is_stable_across_processes() -> None:
    # pinned values: a change of the hash would silently move every camera to another pod
    assert [replica_for(f"cam-{i}", 4) for i in range(8)] == [0, 2, 1, 1, 3, 1, 0, 1]
    assert replica_for("street-cam-07", 1) == 0


@pytest.mark.parametrize(
    ("index", "count", "pod", "expected"),
    [
        (None, 1, None, 0),  # single replica needs nothing
        (2, 3, None, 2),  # explicit index
        (None, 3, "maskwatch-producer-1", 1),  # StatefulSet ordinal
        (None, 3, "producer-12", ValueError),  # ordinal out of range
        (None, 3, "maskwatch-producer", ValueError),  # no ordinal
        (None, 3, None, ValueError),  # nothing to go on
        (3, 3, None, ValueError),  # explicit index out of range
    ],
)
def test_resolve_replica(index: int | None, count: int, pod: str | None, expected: object) -> None:
    if expected is ValueError:
        with pytest.raises(ShardingError):
            resolve_replica(index, count, pod)
    else:
        assert resolve_replica(index, count, pod) == expected
