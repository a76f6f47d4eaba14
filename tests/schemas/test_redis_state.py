"""Window arithmetic across bucket boundaries (pure, a table of cases)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from schemas.redis_state import (
    D1,
    H1,
    M1,
    S10,
    SPANS,
    WINDOWS,
    Counters,
    HistoryRange,
    Keys,
    bucket_expire_at,
    bucket_start,
    dedupe_slot,
    history_starts,
    live_buckets,
    span_starts,
    sum_counters,
    window_starts,
)

T0 = 1_800_000_000  # a multiple of 3600: an hour, minute and 10 s boundary at once
D0 = T0 - 8 * 3600  # T0 is 08:00 UTC: the start of its UTC day
assert T0 % 3600 == 0


@pytest.mark.parametrize(
    ("t", "res", "start"),
    [
        (T0, S10, T0),
        (T0 + 9.999, S10, T0),
        (T0 + 10, S10, T0 + 10),
        (T0 - 0.001, S10, T0 - 10),
        (T0 + 59.9, M1, T0),
        (T0 + 60, M1, T0 + 60),
        (T0 - 1, M1, T0 - 60),
        (T0 + 3599, H1, T0),
        (T0 - 1, H1, T0 - 3600),
    ],
)
def test_bucket_start_at_boundaries(t: float, res: object, start: int) -> None:
    assert bucket_start(t, res) == start  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("now", "window", "first", "last", "count"),
    [
        # 1 min = six 10 s buckets ending with the current one
        (T0, "1m", T0 - 50, T0, 6),
        (T0 + 9.9, "1m", T0 - 50, T0, 6),
        (T0 + 10, "1m", T0 - 40, T0 + 10, 6),
        # 15 min = fifteen minute buckets
        (T0 + 30, "15m", T0 - 14 * 60, T0, 15),
        (T0 + 60, "15m", T0 - 13 * 60, T0 + 60, 15),
        # 24 h = twenty-four hour buckets
        (T0 + 1, "24h", T0 - 23 * 3600, T0, 24),
        (T0 + 3600, "24h", T0 - 22 * 3600, T0 + 3600, 24),
    ],
)
def test_window_starts_slide_at_bucket_boundaries(
    now: float, window: str, first: int, last: int, count: int
) -> None:
    starts = window_starts(now, WINDOWS[window])  # type: ignore[index]
    assert (starts[0], starts[-1], len(starts)) == (first, last, count)
    step = WINDOWS[window].resolution.seconds  # type: ignore[index]
    assert all(b - a == step for a, b in itertools.pairwise(starts))


@pytest.mark.parametrize(
    ("event", "now", "expected"),
    [
        # an event now counts in all four resolutions (its day bucket starts at D0)
        (T0 + 5, T0 + 5, {"s10": T0, "m1": T0, "h1": T0, "d1": D0}),
        # 65 s late: out of the 1 min window but within the 10 s bucket's slot of grace
        (T0, T0 + 65, {"s10": T0, "m1": T0, "h1": T0, "d1": D0}),
        # just inside the 10 s bucket's life (expiry = start + 10 + 60 = T0 + 70)
        (T0, T0 + 69.9, {"s10": T0, "m1": T0, "h1": T0, "d1": D0}),
        (T0, T0 + 70, {"m1": T0, "h1": T0, "d1": D0}),
        # two hours late: only the hour and day buckets are still visible
        (T0, T0 + 7200, {"h1": T0, "d1": D0}),
        # older than the 7 d history: only the day bucket (the 30 d history)
        (T0, T0 + 3600 + 7 * 86400, {"d1": D0}),
        # older than the 30 d history: counted nowhere (lifetime totals only)
        (T0, D0 + 86400 + 31 * 86400, {}),
        # a camera clock running ahead is bucketed at the aggregator's now
        (T0 + 500, T0 + 5, {"s10": T0, "m1": T0, "h1": T0, "d1": D0}),
    ],
)
def test_live_buckets_drop_resolutions_whose_bucket_expired(
    event: float, now: float, expected: dict[str, int]
) -> None:
    plan = live_buckets(event, now)
    assert {res.name: start for res, start, _ in plan} == expected
    for res, start, expire_at in plan:
        assert expire_at == bucket_expire_at(start, res) > now


def test_a_bucket_lives_exactly_as_long_as_a_window_can_contain_it() -> None:
    for window in WINDOWS.values():
        res = window.resolution
        start = T0
        # the last instant `start` is still in the window is start + buckets * res - epsilon
        last_inside = start + window.buckets * res.seconds - 0.001
        assert start in window_starts(last_inside, window)
        assert start not in window_starts(last_inside + 0.002, window)
        assert bucket_expire_at(start, res) >= last_inside


def test_history_is_sixty_minutes_ending_now() -> None:
    starts = history_starts(T0 + 61)
    assert len(starts) == 60 and starts[-1] == T0 + 60 and starts[0] == T0 + 60 - 59 * 60


def test_counters_sum_and_compliance() -> None:
    total = sum_counters(
        [
            {"frames": "3", "faces": "4", "with_mask": "3", "without_mask": "1"},
            {},
            {"frames": "1", "skipped": "1"},
        ]
    )
    assert total == Counters(frames=4, skipped=1, faces=4, with_mask=3, without_mask=1)
    assert total.compliance == 0.75
    assert Counters(frames=5, skipped=5).compliance is None


@pytest.mark.parametrize(
    ("offset_us", "seq", "block", "field"),
    [
        # the producer's numbering: seq = capture microseconds → small fields per 10 s block
        (0, T0 * 10**6, T0 // 10, 0),
        (9_999_999, T0 * 10**6 + 9_999_999, T0 // 10, 9_999_999),
        (10_000_000, T0 * 10**6 + 10_000_000, T0 // 10 + 1, 0),
        # bumped past the clock (two frames in one microsecond): still unique
        (5, T0 * 10**6 + 6, T0 // 10, 6),
        # a plain counter: a large negative field, unique within the block all the same
        (1, 42, T0 // 10, 42 - T0 * 10**6),
    ],
)
def test_dedupe_slot_follows_capture_time(offset_us: int, seq: int, block: int, field: int) -> None:
    captured = datetime.fromtimestamp(T0, UTC) + timedelta(microseconds=offset_us)
    assert dedupe_slot(captured, seq) == (block, field)


def test_keys_are_prefixed() -> None:
    keys = Keys("p:")
    assert keys.seen("cam", 7) == "p:cam:cam:seen:7"
    assert keys.bucket("cam", M1, T0) == f"p:cam:cam:b:m1:{T0}"
    assert keys.bucket(None, M1, T0) == f"p:all:b:m1:{T0}"
    assert all(k.startswith("p:") for k in keys.window("cam", WINDOWS["1m"], T0))


@pytest.mark.parametrize(
    ("name", "seconds", "count"),
    [("1h", 60, 60), ("24h", 3600, 24), ("7d", 3600, 168), ("30d", 86400, 30)],
)
def test_history_spans_end_with_the_current_bucket_and_outlive_nothing(
    name: HistoryRange, seconds: int, count: int
) -> None:
    span = SPANS[name]
    starts = span_starts(T0 + 30, span)
    assert len(starts) == count and starts[-1] == bucket_start(T0 + 30, span.resolution)
    assert all(b - a == seconds for a, b in itertools.pairwise(starts))
    # the oldest bucket a span shows has not expired yet (retention covers the span)
    assert bucket_expire_at(starts[0], span.resolution) > T0 + 30


def test_thirty_days_of_daily_history_are_kept() -> None:
    assert D1.retention_s >= 30 * 86400 and D1.seconds == 86400
    assert Keys("p:").span("cam", SPANS["30d"], T0)[-1] == f"p:cam:cam:b:d1:{D0}"
