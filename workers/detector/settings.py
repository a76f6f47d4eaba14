"""Settings of `maskwatch detector` (env prefix MASKWATCH_DETECTOR_).

The face detector and the crop are sections (`detector`, `crop`): their own models, nested,
so every field of a backend's config is settable here (MASKWATCH_DETECTOR_DETECTOR__BACKEND,
MASKWATCH_DETECTOR_CROP__SMALL_FACE_PX, …) without being copied.
"""

from __future__ import annotations

import socket

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from imaging.crop_config import CropConfig
from runtime.grpc_tls import GrpcClientTls
from runtime.settings import CLI_DEFAULT, RuntimeSettings, ServiceSettings, runtime_section
from schemas.model_server import MODEL_NAME
from workers.detector.backends.configs import DetectorConfig, detector_config


def _default_worker_id() -> str:
    """The host name: a pod's name in Kubernetes, stable across restarts of the pod."""
    return socket.gethostname()[:128]


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
        description="This worker's id in results.",
        json_schema_extra={CLI_DEFAULT: "the host name"},
    )
    runtime: RuntimeSettings = runtime_section(9102)
    model_server: str = Field("127.0.0.1:8500", min_length=3, description="gRPC host:port.")
    model_name: str = Field(MODEL_NAME, min_length=1, description="Served model name.")
    model_server_tls: GrpcClientTls = Field(
        default_factory=GrpcClientTls, description="TLS of the model-server channel."
    )
    classify_timeout_s: float = Field(10.0, gt=0, le=120, description="Deadline per classify call.")
    detector: DetectorConfig = Field(
        default_factory=detector_config, description="Face detector backend and its config."
    )
    crop: CropConfig = Field(default_factory=CropConfig, description="Face crops.")
    mask_threshold: float = Field(0.5, ge=0, le=1, description="P(with_mask) for the label.")
    max_batch_crops: int = Field(64, ge=1, le=1024, description="Most crops per classifier call.")
    max_batch_wait_ms: float = Field(30.0, ge=0, le=5000, description="Longest crop batch wait.")
    classify_in_flight: int = Field(
        1,
        ge=0,
        le=8,
        description="Classify calls left running while the next frames are detected "
        "(0: each call is waited for).",
    )
    poll_records: int = Field(8, ge=1, le=500, description="Most frames taken per poll.")
    max_age_s: float = Field(30.0, gt=0, le=86400, description="Older frames are skipped.")
    known_cameras: list[str] | None = Field(
        None,
        max_length=100_000,
        description="JSON list of camera ids; frames of others are dead-lettered (unset: any).",
    )
    max_attempts: int = Field(
        3,
        ge=1,
        le=20,
        description="Tries before a frame dead-letters (also timed-out/refused classify calls).",
    )
    max_image_px: int = Field(
        3840 * 2160 * 2,
        ge=64 * 64,
        le=16384 * 16384,
        description="Most pixels a frame's JPEG header may declare; larger ones dead-letter.",
    )
    max_clock_skew_s: float = Field(
        300.0, ge=0, le=86400, description="How far in the future a capture time may lie (s)."
    )
    backoff_initial_s: float = Field(0.5, gt=0, le=60, description="First model-server back-off.")
    backoff_max_s: float = Field(10.0, gt=0, le=300, description="Longest back-off.")
