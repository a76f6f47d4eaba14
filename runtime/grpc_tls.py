"""TLS of the gRPC hop from detectors to the model server (face crops cross it), mutual if
the server names a client CA. One server section (`maskwatch serve`) and one client section
(the detector); the certificate files are read, and grpc is imported, when the server or
channel is made, so the settings that hold these sections load without grpc."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

if TYPE_CHECKING:
    import grpc


def _read(path: Path | None) -> bytes | None:
    return path.read_bytes() if path is not None else None


class GrpcServerTls(BaseModel):
    """Server side: TLS on when cert_file and key_file are set; mutual with client_ca_file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cert_file: Path | None = Field(None, description="PEM server certificate (chain).")
    key_file: Path | None = Field(None, description="PEM key of the server certificate.")
    client_ca_file: Path | None = Field(
        None, description="PEM CA that client certificates must chain to (mutual TLS)."
    )

    @model_validator(mode="after")
    def _consistent(self) -> GrpcServerTls:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together")
        if self.client_ca_file and not self.cert_file:
            raise ValueError("client_ca_file (mutual TLS) needs cert_file and key_file")
        return self

    def add_port(self, server: grpc.Server, address: str) -> int:
        """Bind `address` with TLS if configured, else plaintext; the bound port (0 = failed)."""
        import grpc

        if self.cert_file is None or self.key_file is None:
            return int(server.add_insecure_port(address))
        credentials = grpc.ssl_server_credentials(
            [(self.key_file.read_bytes(), self.cert_file.read_bytes())],
            root_certificates=_read(self.client_ca_file),
            require_client_auth=self.client_ca_file is not None,
        )
        return int(server.add_secure_port(address, credentials))


class GrpcClientTls(BaseModel):
    """Client side: plaintext unless `enabled`; the CA file pins the server's CA."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(False, description="Call the model server over TLS.")
    ca_file: Path | None = Field(None, description="PEM CA of the server (default: system CAs).")
    cert_file: Path | None = Field(None, description="PEM client certificate (mutual TLS).")
    key_file: Path | None = Field(None, description="PEM key of the client certificate.")
    server_name: str | None = Field(
        None, min_length=1, description="Name to check in the server certificate (default: host)."
    )

    @model_validator(mode="after")
    def _consistent(self) -> GrpcClientTls:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together (mutual TLS)")
        if not self.enabled and (self.ca_file or self.cert_file or self.server_name):
            raise ValueError("TLS files and server_name need enabled=true")
        return self

    def channel(self, target: str, options: Sequence[tuple[str, Any]]) -> grpc.Channel:
        """A channel to `target`: TLS (mutual if a client certificate is set) or plaintext."""
        import grpc

        if not self.enabled:
            return grpc.insecure_channel(target, options=list(options))
        credentials = grpc.ssl_channel_credentials(
            root_certificates=_read(self.ca_file),
            private_key=_read(self.key_file),
            certificate_chain=_read(self.cert_file),
        )
        named = [("grpc.ssl_target_name_override", self.server_name)] if self.server_name else []
        return grpc.secure_channel(target, credentials, options=[*options, *named])
