"""The local stack's security: certificates and passwords (made once with openssl), and the
config of its SASL_SSL Kafka listener and TLS + AUTH Redis.

One throwaway CA signs a server certificate for 127.0.0.1 / localhost (Kafka's SASL_SSL
listener, Redis TLS, the model server's gRPC TLS all use it) and a client certificate for
mutual TLS. Everything is cached under `<state_dir>/tls/` with owner-only permissions, so a
second `stack up` reuses it and clients can point their CA-file settings at the same paths.
Nothing here is for production: the CA key sits next to the certificates.
"""

from __future__ import annotations

import secrets
import string
import subprocess
from dataclasses import dataclass
from pathlib import Path

import click

SCRAM_USER = "maskwatch"
"""The SCRAM user `stack up` creates; its password is generated into the stack's tls folder."""
VALID_DAYS = 825
SERVER_NAMES = "subjectAltName=IP:127.0.0.1,DNS:localhost"


@dataclass(frozen=True)
class StackTls:
    """Where the local stack's certificates, keys and generated passwords are."""

    folder: Path

    @property
    def ca_file(self) -> Path:
        return self.folder / "ca.crt"

    @property
    def server_cert(self) -> Path:
        return self.folder / "server.crt"

    @property
    def server_key(self) -> Path:
        return self.folder / "server.key"

    @property
    def server_keystore(self) -> Path:
        """The server key and certificate as PKCS#12, the form Kafka's JVM reads."""
        return self.folder / "server.p12"

    @property
    def client_cert(self) -> Path:
        return self.folder / "client.crt"

    @property
    def client_key(self) -> Path:
        return self.folder / "client.key"

    def secret(self, name: str) -> Path:
        """A generated password (`keystore`, `kafka-password`, `redis-password`)."""
        return self.folder / f"{name}.secret"


def _openssl(*args: str, cwd: Path) -> None:
    done = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise click.ClickException(f"openssl {args[0]} failed: {done.stderr.strip()}")


def _signed(tls: StackTls, name: str, subject: str, extension: str | None) -> None:
    """A key and a certificate for `name`, signed by the stack's CA."""
    folder = tls.folder
    _openssl("genrsa", "-out", f"{name}.key", "2048", cwd=folder)
    _openssl(
        "req", "-new", "-key", f"{name}.key", "-subj", subject, "-out", f"{name}.csr", cwd=folder
    )
    extra = ["-extfile", f"{name}.ext"] if extension else []
    if extension:
        (folder / f"{name}.ext").write_text(extension + "\n")
    _openssl(
        "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", str(VALID_DAYS), "-sha256", "-out", f"{name}.crt", *extra,
        cwd=folder,
    )  # fmt: skip


def _write_secret(path: Path) -> None:
    path.touch(mode=0o600)
    path.write_text(secrets.token_urlsafe(24))


def ensure_tls(folder: Path) -> StackTls:
    """The stack's CA, server and client certificates and passwords, made if missing."""
    tls = StackTls(folder)
    if tls.server_keystore.exists() and tls.client_cert.exists():
        return tls
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    _openssl("genrsa", "-out", "ca.key", "2048", cwd=folder)
    _openssl(
        "req", "-x509", "-new", "-key", "ca.key", "-sha256", "-days", str(VALID_DAYS),
        "-subj", "/CN=maskwatch local stack CA", "-out", "ca.crt",
        cwd=folder,
    )  # fmt: skip
    _signed(tls, "server", "/CN=localhost", SERVER_NAMES)
    _signed(tls, "client", "/CN=maskwatch-client", None)
    for name in ("keystore", "kafka-password", "redis-password"):
        _write_secret(tls.secret(name))
    _openssl(
        "pkcs12", "-export", "-in", "server.crt", "-inkey", "server.key", "-name", "server",
        "-passout", f"file:{tls.secret('keystore')}", "-out", "server.p12",
        cwd=folder,
    )  # fmt: skip
    for key in folder.glob("*.key"):
        key.chmod(0o600)
    return tls


def sasl_listener_config(
    tls: StackTls, template: str, values: dict[str, object], sasl_port: int
) -> str:
    """deploy/local/kafka-sasl-ssl.properties filled in (appended to server.properties)."""
    return string.Template(template).substitute(
        values,
        sasl_port=sasl_port,
        keystore=tls.server_keystore,
        keystore_password=tls.secret("keystore").read_text(),
        ca_file=tls.ca_file,
    )


def scram_format_args(tls: StackTls) -> list[str]:
    """`kafka-storage format` arguments adding the stack's SCRAM user (both SHA variants)."""
    password = tls.secret("kafka-password").read_text()
    return [
        arg
        for mechanism in ("SCRAM-SHA-512", "SCRAM-SHA-256")
        for arg in ("--add-scram", f"{mechanism}=[name={SCRAM_USER},password={password}]")
    ]


def redis_tls_config(tls: StackTls, tls_port: int | None) -> str:
    """Redis config read from stdin (the password never shows on a command line, `ps`):
    a TLS port with the stack's certificate and `requirepass`; empty without a TLS port."""
    if tls_port is None:
        return ""
    lines = [
        f"requirepass {tls.secret('redis-password').read_text()}",
        f"tls-port {tls_port}",
        f"tls-cert-file {tls.server_cert}",
        f"tls-key-file {tls.server_key}",
        f"tls-ca-cert-file {tls.ca_file}",
        "tls-auth-clients optional",
    ]
    return "\n".join(lines) + "\n"
