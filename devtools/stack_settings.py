"""Settings of `maskwatch stack` (env prefix MASKWATCH_STACK_): state folder and ports."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from runtime.settings import ServiceSettings

REPO_ROOT = Path(__file__).resolve().parents[1]


class StackSettings(ServiceSettings):
    """Where the local stack keeps its state and which ports it uses (env MASKWATCH_STACK_)."""

    model_config = SettingsConfigDict(env_prefix="MASKWATCH_STACK_")

    state_dir: Path = Field(
        REPO_ROOT / "var" / "stack", description="Data, pid files and logs of the local services."
    )
    kafka_libs: Path | None = Field(
        None, description="Folder of the Kafka jars (default: the cache install.sh fills)."
    )
    kafka_heap_mb: int = Field(1024, ge=256, le=8192, description="Kafka JVM heap (MiB).")
    kafka_port: int = Field(9092, ge=1, le=65535, description="Kafka client port.")
    controller_port: int = Field(9093, ge=1, le=65535, description="KRaft controller port.")
    kafka_sasl_port: int | None = Field(
        None,
        ge=1,
        le=65535,
        description="Also a SASL_SSL (SCRAM) listener on this port (null = plaintext only).",
    )
    redis_port: int = Field(6379, ge=1, le=65535, description="Redis port.")
    redis_tls_port: int | None = Field(
        None,
        ge=1,
        le=65535,
        description="Also a TLS port, and AUTH with a generated password (null = no AUTH).",
    )
    model_server: bool = Field(True, description="Also export and serve the shipped classifier.")
    model_base: Path = Field(
        REPO_ROOT / "var" / "models", description="Model base folder of the model server."
    )
    grpc_port: int = Field(8500, ge=1, le=65535, description="Model server gRPC port.")
    serve_runtime: str = Field(
        "auto",
        pattern="^(auto|tensorflow|openvino-(fp32|bf16|int8))$",
        description="Model server runtime; auto: the fastest variant that passed export's gate.",
    )
    serve_health_port: int = Field(9100, ge=1, le=65535, description="Model server health port.")
    start_timeout_s: float = Field(
        120.0, ge=5, le=1800, description="How long to wait for Kafka or Redis to be healthy."
    )
    serve_timeout_s: float = Field(
        1800.0, ge=5, le=3600, description="How long to wait for export and model server."
    )
