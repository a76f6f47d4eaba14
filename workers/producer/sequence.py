"""Per-camera sequence numbers that only ever increase, without storing anything.

Design: a frame's sequence number is its capture time in microseconds since the Unix epoch,
bumped to `last + 1` when the clock has not moved on (two frames in one microsecond, or the
wall clock stepped back by NTP while the process runs):

    seq = max(last + 1, captured_at_us)

Why this and not a counter:
- Reconnects: the generator lives with the camera, not the connection, so a reconnect just
  continues from `last`.
- Producer restarts and re-sharding: a restarted process (or the replica a camera moves to)
  starts from the current time, which is later than any number the old process handed out as
  long as clocks are NTP-synchronised to better than the restart time (seconds). No state
  store, no coordination, nothing to lose on a crash.
- Consumers get a total order per camera that doubles as an idempotency key
  (camera id, seq) and as a timestamp. Numbers are NOT contiguous: a gap says nothing about
  lost frames (the producer's dropped-frames metric does).
Caveat: a wall clock stepped back by more than the restart time while the producer was down
would repeat numbers; the start-up check `SequenceGenerator(floor_us=...)` exists for callers
that know a floor (tests, or a future persisted high-water mark).
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime


def to_microseconds(moment: datetime) -> int:
    """Microseconds since the Unix epoch of a timezone-aware time (exact integer maths)."""
    delta = moment.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


class SequenceGenerator:
    """Strictly increasing numbers for one camera, derived from capture times."""

    def __init__(self, floor_us: int = -1) -> None:
        self._last = floor_us
        self._lock = threading.Lock()

    @property
    def last(self) -> int:
        return self._last

    def next(self, captured_at: datetime) -> int:
        """The sequence number of a frame captured at `captured_at` (thread-safe)."""
        with self._lock:
            self._last = max(self._last + 1, to_microseconds(captured_at))
            return self._last
