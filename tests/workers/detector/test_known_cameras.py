"""The optional camera allow-list: frames of cameras not on it become `unknown_camera`."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from schemas.common import DeadLetterReason
from schemas.dead_letter import DeadLetter
from workers.detector.core import PendingFrame
from workers.detector.settings import DetectorSettings

from .conftest import frame_message, jpeg, make_core

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
IMAGE = np.zeros((48, 64, 3), np.uint8)


def test_unknown_camera_is_dead_lettered_with_its_id() -> None:
    message = frame_message(jpeg(IMAGE), captured_at=NOW)  # camera cam-1
    outcome = make_core([(4.0, 4.0, 20.0, 20.0)], known_cameras=frozenset({"cam-a"})).prepare(
        message, NOW
    )
    assert isinstance(outcome, DeadLetter)
    assert outcome.reason is DeadLetterReason.UNKNOWN_CAMERA
    assert outcome.camera_id == "cam-1"


@pytest.mark.parametrize("known", [None, frozenset({"cam-1", "cam-b"})])
def test_known_or_unrestricted_camera_is_processed(known: frozenset[str] | None) -> None:
    message = frame_message(jpeg(IMAGE), captured_at=NOW)  # camera cam-1
    assert isinstance(
        make_core([(4.0, 4.0, 20.0, 20.0)], known_cameras=known).prepare(message, NOW), PendingFrame
    )


def test_setting_is_a_json_list_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MASKWATCH_DETECTOR_KNOWN_CAMERAS", '["cam-a", "cam-b"]')
    assert DetectorSettings().known_cameras == ["cam-a", "cam-b"]
    monkeypatch.delenv("MASKWATCH_DETECTOR_KNOWN_CAMERAS")
    assert DetectorSettings().known_cameras is None
