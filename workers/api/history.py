"""A camera's history over 1 h / 24 h / 7 d / 30 d: the response body and its CSV form.

Pure: built from the counters of the span's buckets (`schemas.redis_state.SPANS`), so the
arithmetic and the CSV layout are tested without Redis.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

from pydantic import Field

from schemas.redis_state import Counters, HistoryRange, Span
from workers.api.models import Model, Stats

CSV_COLUMNS = (
    "start",
    "end",
    "frames",
    "skipped",
    "faces",
    "with_mask",
    "without_mask",
    "compliance",
    "skipped_share",
)


class HistoryBucket(Stats):
    """One bucket of a span (a minute, an hour or a UTC day)."""

    start: datetime


class CameraHistory(Model):
    """A camera's counts per bucket over a span, oldest first (empty buckets are zeros)."""

    camera_id: str
    range: HistoryRange
    resolution_s: int = Field(ge=1, description="Bucket length (s): 60, 3600 or 86400.")
    at: datetime = Field(description="Server time of this view (the last bucket holds it).")
    points: list[HistoryBucket]


def camera_history(
    camera: str, span: Span, starts: list[int], counters: list[Counters], now: float
) -> CameraHistory:
    """The body of GET /cameras/{id}/history from the span's bucket counters."""
    return CameraHistory(
        camera_id=camera,
        range=span.name,
        resolution_s=span.resolution.seconds,
        at=datetime.fromtimestamp(now, UTC),
        points=[
            HistoryBucket(start=datetime.fromtimestamp(start, UTC), **Stats.of(c).model_dump())
            for start, c in zip(starts, counters, strict=True)
        ],
    )


def _cell(value: float | None) -> str:
    return "" if value is None else f"{value:.6f}"


def history_csv(history: CameraHistory) -> str:
    """RFC 4180 CSV, one row per bucket; times in ISO 8601 UTC; no faces → empty compliance."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for p in history.points:
        end = datetime.fromtimestamp(p.start.timestamp() + history.resolution_s, UTC)
        writer.writerow(
            [
                p.start.isoformat().replace("+00:00", "Z"),
                end.isoformat().replace("+00:00", "Z"),
                p.frames,
                p.skipped,
                p.faces,
                p.with_mask,
                p.without_mask,
                _cell(p.compliance),
                _cell(p.skipped_share),
            ]
        )
    return out.getvalue()
