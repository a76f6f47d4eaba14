"""The API's settings (env prefix MASKWATCH_API_)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from runtime.redis import RedisState
from runtime.settings import RuntimeSettings, ServiceSettings


class ApiSettings(RedisState, ServiceSettings):
    """Where Redis is, where to listen, the optional bearer token and the stream's pace."""

    model_config = SettingsConfigDict(env_prefix="MASKWATCH_API_")

    host: str = Field("0.0.0.0", min_length=1, description="Address to listen on.")
    port: int = Field(8080, ge=0, le=65535, description="Public HTTP port (API, dashboard).")
    token: SecretStr | None = Field(
        None, description="Bearer token required by /api/v1 (unset: open). Prefer token_file."
    )
    token_file: Path | None = Field(
        None, description="File holding the bearer token (e.g. a mounted Kubernetes secret)."
    )
    stale_after_s: float = Field(
        60.0, ge=1.0, le=86400.0, description="A camera with no frame for this long is stale (s)."
    )
    compliance_target: float = Field(
        0.8,
        ge=0.0,
        le=1.0,
        description="Compliance the dashboard draws as the target line (match the alert rule).",
    )
    tick_s: float = Field(
        10.0,
        ge=0.5,
        le=300.0,
        description="Windows are rolled, totals read and changes streamed this often (s).",
    )
    resync_s: float = Field(
        300.0,
        ge=1.0,
        le=3600.0,
        description="Every camera is re-read this often: bounds a lost update message and "
        "drops pruned cameras (s).",
    )
    stream_coalesce_s: float = Field(
        0.5, ge=0.05, le=10.0, description="Camera updates are batched this long (s)."
    )
    max_page: int = Field(
        5000, ge=1, le=100_000, description="Most cameras one GET /api/v1/cameras returns."
    )
    max_streams: int = Field(100, ge=1, le=10_000, description="Concurrent event streams allowed.")
    max_alerts: int = Field(500, ge=1, le=10_000, description="Most alert events one request gets.")
    metric_labels: list[str] = Field(
        default_factory=lambda: ["site", "zone"],
        max_length=8,
        description="Label names with per-value Prometheus gauges.",
    )
    metric_max_cameras: int = Field(
        2000, ge=0, le=100_000, description="Most cameras with their own Prometheus series."
    )
    metric_max_label_values: int = Field(
        100, ge=1, le=10_000, description="Most values per metric label (the rest: _other)."
    )
    runtime: RuntimeSettings = Field(
        default_factory=lambda: RuntimeSettings(health_port=9104),
        description="Logging, and the health port: /metrics, /healthz, /readyz (not public).",
    )

    def bearer_token(self) -> str | None:
        """The token from `token_file` or `token`; None when the API is open."""
        if self.token_file is not None:
            return self.token_file.read_text().strip() or None
        return self.token.get_secret_value() if self.token else None
