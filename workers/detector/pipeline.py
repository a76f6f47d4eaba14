"""Classify calls in flight while the worker detects the next frames (pure bookkeeping).

For the worker the gRPC call is I/O: while the model server classifies batch N, the worker's
thread can decode and detect the frames of batch N+1. `InFlight` holds the calls started and
not yet landed, oldest first, at most `limit` of them, so the frames detected but unanswered
stay bounded (memory, and what a crash leaves to replay) and answers land in the order the
calls were made. Only the call runs off the worker's thread (an executor); landing it
(publishing, the retry rules, anything touching Kafka, whose clients are not thread-safe)
stays on the worker's thread.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class Flight(Generic[T, R]):
    """One call in flight: what it is for (`batch`) and its pending answer."""

    batch: T
    future: Future[R]


class InFlight(Generic[T, R]):
    """Calls in flight, oldest first, at most `limit` (0: none, every call is waited for)."""

    def __init__(self, limit: int) -> None:
        if limit < 0:
            raise ValueError(f"limit must be >= 0, got {limit}")
        self.limit = limit
        self._flights: deque[Flight[T, R]] = deque()

    def __len__(self) -> int:
        return len(self._flights)

    def full(self) -> bool:
        """No room for another call: land the oldest first."""
        return len(self._flights) >= self.limit

    def add(self, batch: T, future: Future[R]) -> None:
        if self.full():
            raise RuntimeError(f"{self.limit} calls already in flight")
        self._flights.append(Flight(batch, future))

    def pop_done(self) -> list[Flight[T, R]]:
        """The oldest calls that have finished, up to the first still running (so answers
        never land out of call order); they leave the queue."""
        done: list[Flight[T, R]] = []
        while self._flights and self._flights[0].future.done():
            done.append(self._flights.popleft())
        return done

    def pop_oldest(self) -> Flight[T, R] | None:
        """The oldest call, finished or not (the caller waits on it), or None."""
        return self._flights.popleft() if self._flights else None

    def pop_all(self) -> list[Flight[T, R]]:
        """Every call, oldest first (draining at shutdown or before a revoke)."""
        flights = list(self._flights)
        self._flights.clear()
        return flights
