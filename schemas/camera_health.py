"""Camera health: what a producer says about each camera it reads, and the cameras configured.

Producers write, the API reads, through Redis (key names in `schemas.redis_state.Keys`):
- `Keys.health(camera)`: one `CameraHealth` as JSON, written every few seconds with a TTL
  of a few report intervals (`ttl_s`), so a producer that dies leaves no record claiming a
  camera is connected: the record expires and the camera reads as "no producer reporting".
- `Keys.configured`: sorted set, camera id → epoch ms of the producer's last registration,
  and `Keys.configured_camera(camera)`: its `ConfiguredCamera` JSON with the same TTL (so
  the set and the records are bounded by what is configured now). Every producer
  registers the cameras it owns at start-up and with each report, so a camera configured but
  never seen by the aggregator is still listed; a registration older than
  `CONFIGURED_TTL_S` is ignored (a camera removed from cameras.yaml disappears), and readers
  drop it.

Versioned like every contract (the rule in `schemas/common.py`): unknown fields are ignored,
a record of an unsupported version is ignored by readers (treated as absent, never guessed).
"""

from __future__ import annotations

from typing import Final, Literal

from pydantic import Field

from schemas.common import CameraId, Contract, Labels, UtcTime

HEALTH_SCHEMA_VERSION: Final = 1
SUPPORTED_HEALTH_VERSIONS = frozenset({1})
CONFIGURED_TTL_S: Final = 3600
"""A configured camera whose producer has not registered it for this long is forgotten."""

SourceState = Literal["connecting", "connected", "disconnected", "finished"]
"""connecting: opening the source (first attempt or a reconnect); connected: reading;
disconnected: the source failed, a reconnect is scheduled; finished: a file source ended."""


class CameraHealth(Contract):
    """One camera as its producer sees it, at `updated_at`."""

    schema_version: Literal[1] = HEALTH_SCHEMA_VERSION
    camera_id: CameraId
    producer: str = Field(max_length=253, description="The producer replica (client id).")
    state: SourceState
    since: UtcTime = Field(description="When the camera entered `state`.")
    last_frame_at: UtcTime | None = Field(
        None, description="When the last frame was read from the source (null: none yet)."
    )
    configured_fps: float = Field(gt=0, description="Frames per second cameras.yaml asks for.")
    actual_fps: float = Field(
        ge=0, description="Frames per second sampled and encoded over the last report interval."
    )
    reconnects: int = Field(ge=0, description="Source failures followed by a reconnect.")
    dropped: int = Field(ge=0, description="Frames read but never sent, all reasons.")
    last_error: str | None = Field(None, max_length=300, description="Why the source failed.")
    updated_at: UtcTime
    ttl_s: int = Field(ge=1, description="How long this record lives unless rewritten.")


class ConfiguredCamera(Contract):
    """A camera in some producer's cameras.yaml (enabled, owned by that replica)."""

    schema_version: Literal[1] = HEALTH_SCHEMA_VERSION
    camera_id: CameraId
    labels: Labels = Field(default_factory=dict)
    configured_fps: float = Field(gt=0)
    producer: str = Field(max_length=253)
