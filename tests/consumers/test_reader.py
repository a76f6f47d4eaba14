"""Pure parts of `maskwatch results`: the camera / label filter and the time options."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from consumers.reader import Filter
from consumers.results import ExportSettings, TailSettings
from workers.aggregator.synthetic import result

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def test_filter_by_camera_checks_the_key_before_decoding() -> None:
    keep = Filter(camera="cam-a")
    assert keep.keeps_key(b"cam-a")
    assert not keep.keeps_key(b"cam-b")
    assert not keep.keeps_key(None)
    assert Filter().keeps_key(None)


def test_filter_by_label_keeps_results_with_such_a_face() -> None:
    masked_only = result("cam-a", 1, NOW, masked=2)
    mixed = result("cam-a", 2, NOW, masked=1, unmasked=1)
    skipped = result("cam-a", 3, NOW, skipped=True)
    keep = Filter(label="without_mask")
    assert [keep.keeps(r) for r in (masked_only, mixed, skipped)] == [False, True, False]
    assert Filter(camera="cam-b").keeps(mixed) is False


def test_times_are_zoned_or_a_span_ago() -> None:
    settings = TailSettings(since="15m")
    assert settings.since is not None
    ago = datetime.now(UTC) - settings.since
    assert timedelta(minutes=14) < ago < timedelta(minutes=16)
    exact = ExportSettings(start="2026-12-01T08:00:00Z", end="2d")
    assert exact.start == NOW - timedelta(hours=1)
    with pytest.raises(ValidationError, match="timezone"):
        ExportSettings(start="2026-12-01T08:00:00")  # a time without zone is ambiguous
    with pytest.raises(ValidationError):
        TailSettings(since="15 minutes")
