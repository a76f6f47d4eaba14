"""The aggregator's settings (env prefix MASKWATCH_AGGREGATOR_); Kafka's come from KafkaSettings."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import SettingsConfigDict

from runtime.redis import RedisState
from runtime.settings import RuntimeSettings, ServiceSettings, runtime_section
from schemas.redis_state import WINDOWS, WindowName
from workers.aggregator.alerts import AlertRules

DAY_S = 86400


class RuleOverride(BaseModel):
    """Alert thresholds of one camera that differ from the defaults (unset: the default)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    compliance_below: float | None = Field(None, ge=0.0, le=1.0)
    hysteresis: float | None = Field(None, ge=0.0, le=0.5)
    min_faces: int | None = Field(None, ge=1, le=1_000_000)
    alert_window: WindowName | None = None
    silent_after_s: float | None = Field(None, ge=1.0, le=DAY_S)
    cooldown_s: float | None = Field(None, ge=0.0, le=DAY_S)


class AggregatorSettings(RedisState, ServiceSettings):
    """Where Redis is, how results are consumed, how long state lives, and the alert rules."""

    model_config = SettingsConfigDict(env_prefix="MASKWATCH_AGGREGATOR_")

    group_id: str = Field(
        "maskwatch-aggregator", min_length=1, max_length=128, description="Kafka consumer group."
    )
    client_id: str = Field(
        "aggregator", min_length=1, max_length=128, description="Kafka client id of this process."
    )
    max_batch: int = Field(500, ge=1, le=5000, description="Results applied per Redis round trip.")
    poll_timeout_ms: int = Field(500, ge=10, le=10_000, description="Kafka poll wait (ms).")
    seen_ttl_s: int = Field(
        3600,
        ge=60,
        le=7 * DAY_S,
        description="Dedupe window (s of capture time) below a camera's newest applied result: "
        "replays inside it are no-ops, results older than it are refused as late.",
    )
    max_result_bytes: int = Field(
        1024 * 1024,
        ge=4096,
        le=64 * 1024 * 1024,
        description="Largest result record (bytes, after Kafka decompression) that is parsed.",
    )
    max_faces: int = Field(
        2000, ge=1, le=100_000, description="Most faces one frame's result may report."
    )
    max_clock_skew_s: float = Field(
        300.0, ge=0, le=86400, description="How far in the future a capture time may lie (s)."
    )
    camera_ttl_s: int = Field(
        7 * DAY_S,
        ge=3600,
        le=90 * DAY_S,
        description="A camera unseen this long leaves the registry; its summary expires (s).",
    )
    alerts_kept: int = Field(
        500, ge=10, le=100_000, description="Recent alert events kept in Redis."
    )
    compliance_below: float = Field(
        0.8, ge=0.0, le=1.0, description="low_compliance fires below this share of masked faces."
    )
    hysteresis: float = Field(
        0.05, ge=0.0, le=0.5, description="low_compliance resolves at compliance_below + this."
    )
    min_faces: int = Field(
        20, ge=1, le=1_000_000, description="Faces the window needs before compliance is judged."
    )
    alert_window: WindowName = Field("15m", description="Window of low_compliance (1m, 15m, 24h).")
    silent_after_s: float = Field(
        60.0,
        ge=1.0,
        le=DAY_S,
        description="camera_silent fires after this long without a frame (s).",
    )
    cooldown_s: float = Field(
        300.0,
        ge=0.0,
        le=DAY_S,
        description="A rule fires at most once per camera in this time (s).",
    )
    eval_interval_s: float = Field(
        5.0, ge=0.1, le=300.0, description="How often silence is checked over all cameras (s)."
    )
    camera_rules: dict[str, RuleOverride] = Field(
        default_factory=dict,
        description='Per-camera alert thresholds as JSON, e.g. {"gate-1": {"min_faces": 50}}.',
    )
    webhook_url: str | None = Field(
        None, description="POST alert events here as JSON (optional; retried in background)."
    )
    webhook_queue: int = Field(
        1000, ge=1, le=100_000, description="Alert events queued for the webhook."
    )
    webhook_retries: int = Field(5, ge=1, le=20, description="Attempts per webhook POST.")
    runtime: RuntimeSettings = runtime_section(9103)

    def alert_rules(self, camera: str | None = None) -> AlertRules:
        """The rules of `camera`: its overrides (camera_rules) over the defaults."""
        given = self.camera_rules.get(camera or "", RuleOverride()).model_dump(exclude_none=True)
        merged = {name: given.get(name, getattr(self, name)) for name in RuleOverride.model_fields}
        return AlertRules(
            compliance_below=merged["compliance_below"],
            hysteresis=merged["hysteresis"],
            min_faces=merged["min_faces"],
            window=merged["alert_window"],
            window_s=WINDOWS[merged["alert_window"]].seconds,
            silent_after_s=merged["silent_after_s"],
            cooldown_s=merged["cooldown_s"],
        )
