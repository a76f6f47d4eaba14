"""Settings of `maskwatch detector` (env prefix MASKWATCH_DETECTOR_)."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from serving.crop import CropConfig
from workers.common.settings import ServiceSettings
from workers.detector.detectors import DEFAULT_BACKEND, BackendName, detector_config

if TYPE_CHECKING:
    from workers.detector.detectors import AnyDetectorConfig


def _default_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"[:128]


class DetectorSettings(ServiceSettings):
    """One detector worker: consumer group, detector, classifier client, delivery bounds."""

    model_config = SettingsConfigDict(env_prefix="MASKWATCH_DETECTOR_")

    group_id: str = Field(
        "maskwatch-detectors", min_length=1, max_length=255, description="Kafka consumer group."
    )
    worker_id: str = Field(
        default_factory=_default_worker_id,
        min_length=1,
        max_length=128,
        description="This worker's id in results (default: hostname-pid).",
    )
    health_port: int = Field(9102, ge=0, le=65535, description="Health/metrics port (0 = any).")
    log_level: str = Field("INFO", pattern="^(DEBUG|INFO|WARNING|ERROR)$", description="Log level.")
    model_server: str = Field("127.0.0.1:8500", min_length=3, description="gRPC host:port.")
    model_name: str = Field("mask_classifier", min_length=1, description="Served model name.")
    classify_timeout_s: float = Field(10.0, gt=0, le=120, description="Deadline per classify call.")
    detector: BackendName = Field(DEFAULT_BACKEND, description="Face detector backend.")
    model_path: Path | None = Field(None, description="Detector weights file (default: resolved).")
    score_threshold: float | None = Field(
        None, ge=0, le=1, description="Minimum face confidence (default: the backend's)."
    )
    nms_threshold: float | None = Field(
        None, gt=0, le=1, description="NMS IoU threshold (default: the backend's)."
    )
    upscale_to_px: int | None = Field(
        None, ge=64, le=8192, description="Upscale shorter frames to this (default: backend's)."
    )
    max_upscale: float | None = Field(
        None, ge=1, le=8, description="Largest detection upscaling (default: the backend's)."
    )
    max_side_px: int | None = Field(
        None, ge=64, le=8192, description="Downscale longer frames to this (default: backend's)."
    )
    detector_threads: int = Field(0, ge=0, le=64, description="Detector threads (0 = default).")
    mask_threshold: float = Field(0.5, ge=0, le=1, description="P(with_mask) for the label.")
    small_face_px: int = Field(32, ge=0, le=1024, description="Faces below this are enlarged.")
    small_face_enlarge: float = Field(0.35, ge=0, le=4, description="Small-face enlargement.")
    max_batch_crops: int = Field(64, ge=1, le=1024, description="Most crops per classifier call.")
    max_batch_wait_ms: float = Field(30.0, ge=0, le=5000, description="Longest crop batch wait.")
    poll_records: int = Field(8, ge=1, le=500, description="Most frames taken per poll.")
    max_age_s: float = Field(30.0, gt=0, le=86400, description="Older frames are skipped.")
    known_cameras: list[str] | None = Field(
        None,
        max_length=100_000,
        description="JSON list of camera ids; frames of others are dead-lettered (unset: any).",
    )
    max_attempts: int = Field(3, ge=1, le=20, description="Tries before a frame dead-letters.")
    backoff_initial_s: float = Field(0.5, gt=0, le=60, description="First model-server back-off.")
    backoff_max_s: float = Field(10.0, gt=0, le=300, description="Longest back-off.")

    def detector_config(self) -> AnyDetectorConfig:
        """The chosen backend's config: its calibrated defaults, overridden only by the
        detection settings given here (each backend has its own operating point)."""
        given = {
            "model_path": self.model_path,
            "score_threshold": self.score_threshold,
            "nms_threshold": self.nms_threshold,
            "upscale_to_px": self.upscale_to_px,
            "max_upscale": self.max_upscale,
            "max_side_px": self.max_side_px,
        }
        overrides = {key: value for key, value in given.items() if value is not None}
        return detector_config(self.detector, {**overrides, "threads": self.detector_threads})

    def crop_config(self) -> CropConfig:
        return CropConfig(
            small_face_px=self.small_face_px, small_face_enlarge=self.small_face_enlarge
        )
