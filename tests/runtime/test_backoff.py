"""Backoff: delays grow to the cap, stay within the jitter band, and the bounds end a loop."""

from __future__ import annotations

import random

import pytest
from pydantic import ValidationError

from runtime.backoff import Backoff, BackoffPolicy


def test_delays_grow_to_the_cap_within_the_jitter_band() -> None:
    policy = BackoffPolicy(initial_s=0.1, max_s=1.0, multiplier=2.0, jitter=0.25)
    backoff = Backoff(policy, random.Random(7))
    ceilings = [0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0]
    for ceiling in ceilings:
        delay = backoff.next_delay()
        assert delay is not None
        assert ceiling * 0.75 <= delay <= ceiling


def test_attempt_bound_gives_up_on_the_last_failure() -> None:
    backoff = Backoff(BackoffPolicy(initial_s=0.01, max_s=0.01, max_attempts=3))
    assert backoff.next_delay() is not None
    assert not backoff.exhausted
    assert backoff.next_delay() is not None
    assert backoff.exhausted
    assert backoff.next_delay() is None
    backoff.reset()
    assert backoff.next_delay() is not None


def test_budget_bounds_the_total_wait() -> None:
    backoff = Backoff(BackoffPolicy(initial_s=1.0, max_s=4.0, jitter=0.0, budget_s=5.0))
    delays = []
    while (delay := backoff.next_delay()) is not None:
        delays.append(delay)
    assert delays == [1.0, 2.0, 2.0]
    assert sum(delays) == pytest.approx(5.0)


def test_unbounded_policy_never_gives_up() -> None:
    backoff = Backoff(BackoffPolicy(initial_s=0.01, max_s=0.02))
    assert all(backoff.next_delay() is not None for _ in range(10_000))


def test_cap_below_initial_is_rejected() -> None:
    with pytest.raises(ValidationError, match="below initial_s"):
        BackoffPolicy(initial_s=2.0, max_s=1.0)
