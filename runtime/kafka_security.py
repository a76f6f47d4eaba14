"""The security section of the Kafka settings: TLS and SASL for every client, one definition.

Kept apart from runtime/kafka.py so the connection check (runtime/kafka_check.py) can use it
without importing the client factories.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from runtime.secrets import one_source, read_secret


class KafkaSecurity(BaseModel):
    """How every Kafka client encrypts and authenticates (env MASKWATCH_KAFKA_SECURITY__*).

    SASL_SSL with SCRAM is the production setting: TLS for the wire, a per-service user for
    the broker's ACLs. SSL with a client certificate is mutual TLS without SASL.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="Kafka security.protocol of every client."
    )
    sasl_mechanism: Literal["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"] = Field(
        "SCRAM-SHA-512", description="SASL mechanism (SASL_* protocols only)."
    )
    username: str | None = Field(None, min_length=1, description="SASL user name.")
    password: SecretStr | None = Field(
        None, description="SASL password (environment only; or password_file)."
    )
    password_file: Path | None = Field(None, description="File holding the SASL password.")
    ca_file: Path | None = Field(
        None, description="PEM CA bundle the brokers' certificates must chain to (TLS)."
    )
    cert_file: Path | None = Field(None, description="PEM client certificate (mutual TLS).")
    key_file: Path | None = Field(None, description="PEM key of the client certificate.")
    check_hostname: bool = Field(True, description="Check the broker's name in its certificate.")

    @property
    def uses_tls(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    @property
    def uses_sasl(self) -> bool:
        return self.protocol.startswith("SASL_")

    @model_validator(mode="after")
    def _consistent(self) -> KafkaSecurity:
        """Refuse settings that would silently not apply (a CA file on a plaintext client)."""
        one_source(self.password, self.password_file, "password")
        has_password = self.password is not None or self.password_file is not None
        if self.uses_sasl and not (self.username and has_password):
            raise ValueError(f"{self.protocol} needs username and password (or password_file)")
        if not self.uses_sasl and (self.username or has_password):
            raise ValueError(f"username/password are used only by SASL_*, not {self.protocol}")
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together (mutual TLS)")
        if not self.uses_tls and (self.ca_file or self.cert_file):
            raise ValueError(
                f"ca_file/cert_file are used only by SSL and SASL_SSL, not {self.protocol}"
            )
        return self

    def client_config(self) -> dict[str, Any]:
        """kafka-python's security arguments (the password file is read now, at each client)."""
        config: dict[str, Any] = {"security_protocol": self.protocol}
        if self.uses_tls:
            config |= {
                "ssl_cafile": str(self.ca_file) if self.ca_file else None,
                "ssl_certfile": str(self.cert_file) if self.cert_file else None,
                "ssl_keyfile": str(self.key_file) if self.key_file else None,
                "ssl_check_hostname": self.check_hostname,
            }
        if self.uses_sasl:
            config |= {
                "sasl_mechanism": self.sasl_mechanism,
                "sasl_plain_username": self.username,
                "sasl_plain_password": read_secret(self.password, self.password_file, "password"),
            }
        return config
