"""Alert events, published by the aggregator when a camera's rule starts or stops firing."""

from __future__ import annotations

from typing import Final, Literal

from pydantic import Field

from schemas.common import CameraId, Contract, UtcTime

ALERT_SCHEMA_VERSION: Final = 1
SUPPORTED_ALERT_VERSIONS = frozenset({1})


class AlertEvent(Contract):
    """A rule changed state for a camera."""

    schema_version: Literal[1] = ALERT_SCHEMA_VERSION
    camera_id: CameraId
    rule: Literal["low_compliance", "camera_silent"]
    state: Literal["firing", "resolved"]
    value: float | None = Field(default=None, description="Measured compliance or silence (s).")
    threshold: float
    window_s: int | None = Field(default=None, ge=1)
    at: UtcTime
    message: str = Field(max_length=500)
