"""Where the per-camera Redis state lives (one definition for the aggregator and the API)."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from runtime.secrets import one_source, read_secret


class RedisSecurity(BaseModel):
    """AUTH (password or ACL user) and TLS of the Redis connection. TLS is on when the URL's
    scheme is `rediss://`; the certificate files apply only then."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    username: str | None = Field(None, min_length=1, description="ACL user (null = default).")
    password: SecretStr | None = Field(
        None, description="AUTH password (environment only; or password_file)."
    )
    password_file: Path | None = Field(None, description="File holding the AUTH password.")
    ca_file: Path | None = Field(None, description="PEM CA bundle of the server's certificate.")
    cert_file: Path | None = Field(None, description="PEM client certificate (mutual TLS).")
    key_file: Path | None = Field(None, description="PEM key of the client certificate.")
    check_hostname: bool = Field(True, description="Check the server's name in its certificate.")

    @model_validator(mode="after")
    def _consistent(self) -> RedisSecurity:
        one_source(self.password, self.password_file, "password")
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together (mutual TLS)")
        return self


class RedisState(BaseModel):
    """Where the per-camera state lives: the aggregator writes it, the API reads it, so both
    take these settings from this one definition (each under its own env prefix)."""

    redis_url: str = Field(
        "redis://127.0.0.1:6379/0",
        min_length=8,
        description="Redis URL (redis://host:port/db; rediss:// for TLS), without a password.",
    )
    key_prefix: str = Field(
        "mw:",
        min_length=1,
        max_length=128,
        pattern=r"^[A-Za-z0-9_.:-]+$",
        description="Prefix of every Redis key (isolates deployments and tests).",
    )
    redis_security: RedisSecurity = Field(
        default_factory=RedisSecurity, description="Redis AUTH and TLS."
    )

    @model_validator(mode="after")
    def _no_secret_in_url(self) -> RedisState:
        """A password in the URL would sit in plain config and in every log of the URL."""
        parts = urlsplit(self.redis_url)
        if parts.scheme not in ("redis", "rediss"):
            raise ValueError("redis_url must start with redis:// or rediss://")
        if parts.password:
            raise ValueError("no password in redis_url: use redis_security password(_file)")
        tls_files = self.redis_security.ca_file or self.redis_security.cert_file
        if parts.scheme == "redis" and tls_files:
            raise ValueError("redis_security ca_file/cert_file need a rediss:// URL")
        return self

    def redis_options(self) -> dict[str, Any]:
        """Keyword arguments of `Redis.from_url` (sync or asyncio) besides the URL: AUTH and TLS
        (the password file is read now, at each client)."""
        security = self.redis_security
        options: dict[str, Any] = {
            "username": security.username,
            "password": read_secret(security.password, security.password_file, "password"),
        }
        if urlsplit(self.redis_url).scheme == "rediss":
            options |= {
                "ssl_ca_certs": str(security.ca_file) if security.ca_file else None,
                "ssl_certfile": str(security.cert_file) if security.cert_file else None,
                "ssl_keyfile": str(security.key_file) if security.key_file else None,
                "ssl_check_hostname": security.check_hostname,
                "ssl_cert_reqs": "required",
            }
        return options
