"""One capped, jittered exponential back-off for every retry loop of every service.

Why one: retries stacked in several places (a client retrying 4×, then a worker forever)
multiply waits and hide outages; a single type with a stated bound (attempts, total time
budget, or neither for "wait out an outage") makes each loop's limit readable in one place.
Pure: it computes delays and counts attempts; the caller sleeps (usually on its stop event).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field, model_validator


class BackoffPolicy(BaseModel):
    """How a retry loop waits: first delay, cap, jitter, and its bound (none: unbounded)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    initial_s: float = Field(0.5, gt=0, le=60, description="First delay (s).")
    max_s: float = Field(10.0, gt=0, le=3600, description="Longest delay (s).")
    multiplier: float = Field(2.0, ge=1.0, le=10.0, description="Growth per attempt.")
    jitter: float = Field(
        0.2, ge=0.0, le=1.0, description="Each delay is drawn from [d·(1-jitter), d]."
    )
    max_attempts: int | None = Field(
        None, ge=1, le=1000, description="Attempts before giving up (unset: no attempt bound)."
    )
    budget_s: float | None = Field(
        None, gt=0, le=86400, description="Total delay before giving up (unset: no time bound)."
    )

    @model_validator(mode="after")
    def _ordered(self) -> BackoffPolicy:
        if self.max_s < self.initial_s:
            raise ValueError(f"max_s {self.max_s} is below initial_s {self.initial_s}")
        return self


@dataclass
class Backoff:
    """The state of one retry loop under a `BackoffPolicy`.

    Use: `delay = backoff.next_delay()`; None means the bound is spent (give up), otherwise
    wait that long and try again; `reset()` after a success.
    """

    policy: BackoffPolicy
    rng: random.Random = field(default_factory=random.Random)
    attempts: int = 0
    waited_s: float = 0.0

    def next_delay(self) -> float | None:
        """The next delay in seconds, or None once `max_attempts` failures or `budget_s` of
        waiting are used up (the failure that spends the bound gets no delay)."""
        self.attempts += 1
        policy = self.policy
        if policy.max_attempts is not None and self.attempts >= policy.max_attempts:
            return None
        growth = policy.multiplier ** min(self.attempts - 1, 64)
        ceiling = min(policy.initial_s * growth, policy.max_s)
        delay = ceiling * (1.0 - policy.jitter * self.rng.random())
        if policy.budget_s is not None:
            left = policy.budget_s - self.waited_s
            if left <= 0:
                return None
            delay = min(delay, left)
        self.waited_s += delay
        return delay

    @property
    def exhausted(self) -> bool:
        """Whether the next failure would give up."""
        policy = self.policy
        if policy.max_attempts is not None and self.attempts + 1 >= policy.max_attempts:
            return True
        return policy.budget_s is not None and self.waited_s >= policy.budget_s

    def reset(self) -> None:
        """Start over after a success."""
        self.attempts = 0
        self.waited_s = 0.0
