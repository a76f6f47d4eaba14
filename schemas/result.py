"""Frame results: one per frame, published by the detector to the results topic.

This is the one detections type that flows from detector to aggregator: boxes as `xyxy` in
pixels of the original frame, detector scores, labels and mask probabilities, with shapes and
ranges checked on construction.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final, Literal, Self

from pydantic import Field, model_validator

from schemas.common import CameraId, Contract, Labels, Sequence, UtcTime

RESULT_SCHEMA_VERSION: Final = 1
SUPPORTED_RESULT_VERSIONS = frozenset({1})

Label = Literal["with_mask", "without_mask"]


class SkipReason(StrEnum):
    """Why a frame was answered without classification."""

    TOO_OLD = "too_old"
    """Older than the detector's max age when it was taken from Kafka (overload shedding)."""


class Face(Contract):
    """One detected and classified face."""

    xyxy: tuple[float, float, float, float] = Field(
        description="Box x1, y1, x2, y2 in pixels of the original frame (x2 >= x1, y2 >= y1)."
    )
    score: float = Field(ge=0.0, le=1.0, description="Face detector confidence.")
    label: Label
    mask_probability: float = Field(ge=0.0, le=1.0, description="Classifier P(with_mask).")

    @model_validator(mode="after")
    def _box_ordered(self) -> Self:
        x1, y1, x2, y2 = self.xyxy
        if x2 < x1 or y2 < y1:
            raise ValueError(f"xyxy must have x2 >= x1 and y2 >= y1, got {self.xyxy}")
        return self


class Counts(Contract):
    """Face counts of one frame; always consistent with `FrameResult.faces`."""

    faces: int = Field(ge=0)
    with_mask: int = Field(ge=0)
    without_mask: int = Field(ge=0)


class ModelRef(Contract):
    """Which model produced a result (name and version), for audits and canaries."""

    name: str = Field(min_length=1, max_length=128)
    version: str = Field(min_length=1, max_length=64)


class StageTimings(Contract):
    """Milliseconds spent per stage for this frame (classify is the frame's share of batches)."""

    decode_ms: float = Field(ge=0.0, default=0.0)
    detect_ms: float = Field(ge=0.0, default=0.0)
    classify_ms: float = Field(ge=0.0, default=0.0)
    total_ms: float = Field(ge=0.0, default=0.0)


class FrameResult(Contract):
    """The detector's answer for one frame."""

    schema_version: Literal[1] = RESULT_SCHEMA_VERSION
    camera_id: CameraId
    seq: Sequence
    captured_at: UtcTime
    processed_at: UtcTime
    frame_wh: tuple[int, int] = Field(description="Frame width and height in pixels.")
    status: Literal["processed", "skipped"]
    skip_reason: SkipReason | None = None
    faces: tuple[Face, ...] = ()
    counts: Counts
    detector: ModelRef
    classifier: ModelRef
    worker_id: str = Field(min_length=1, max_length=128)
    timings_ms: StageTimings = StageTimings()
    labels: Labels = Field(
        default_factory=dict,
        description="The camera's labels from its frame header (added in version 1: optional).",
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if (self.status == "skipped") != (self.skip_reason is not None):
            raise ValueError("skip_reason is required for skipped results and only for them")
        if self.status == "skipped" and self.faces:
            raise ValueError("a skipped result has no faces")
        expected = counts_of(self.faces)
        if self.counts != expected:
            raise ValueError(f"counts {self.counts} do not match faces {expected}")
        width, height = self.frame_wh
        if width <= 0 or height <= 0:
            raise ValueError(f"frame_wh must be positive, got {self.frame_wh}")
        for face in self.faces:
            x1, y1, x2, y2 = face.xyxy
            if x1 < -1 or y1 < -1 or x2 > width + 1 or y2 > height + 1:
                raise ValueError(f"face box {face.xyxy} outside frame {self.frame_wh}")
        return self


def counts_of(faces: tuple[Face, ...]) -> Counts:
    """The `Counts` that match `faces` (use it to build a consistent FrameResult)."""
    masked = sum(1 for f in faces if f.label == "with_mask")
    return Counts(faces=len(faces), with_mask=masked, without_mask=len(faces) - masked)
