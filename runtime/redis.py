"""Where the per-camera Redis state lives (one definition for the aggregator and the API)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class RedisState(BaseModel):
    """Where the per-camera state lives: the aggregator writes it, the API reads it, so both
    take these two settings from this one definition (each under its own env prefix)."""

    redis_url: str = Field(
        "redis://127.0.0.1:6379/0", min_length=8, description="Redis URL (redis://host:port/db)."
    )
    key_prefix: str = Field(
        "mw:",
        min_length=1,
        max_length=128,
        pattern=r"^[A-Za-z0-9_.:-]+$",
        description="Prefix of every Redis key (isolates deployments and tests).",
    )
