"""Why a Kafka client could not bootstrap, in one line an operator can act on.

kafka-python reports a wrong password, an untrusted broker certificate and a plaintext client
on a TLS port alike, as "Unable to bootstrap". When a client factory fails, this probes the
first bootstrap server step by step (TCP, then whether it answers TLS, then the certificate
with the client's own CA and names) and says which step failed; a failure after a trusted
TLS handshake on a SASL listener is the SASL login.
"""

from __future__ import annotations

import socket
import ssl

from runtime.kafka_security import KafkaSecurity

PROBE_TIMEOUT_S = 3.0


class KafkaConnectError(Exception):
    """A Kafka client could not connect; the message says why (never the password)."""


def _address(bootstrap_servers: str) -> tuple[str, int]:
    host, _, port = bootstrap_servers.split(",")[0].strip().rpartition(":")
    return host.strip("[]"), int(port)


def _handshake(host: str, port: int, context: ssl.SSLContext) -> None:
    raw = socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S)
    with raw, context.wrap_socket(raw, server_hostname=host):
        pass


def _answers_tls(host: str, port: int) -> bool:
    """True if the server completes a TLS handshake (certificate not checked here)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        _handshake(host, port, context)
    except (OSError, ssl.SSLError):
        return False
    return True


def _client_context(security: KafkaSecurity) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(security.ca_file) if security.ca_file else None)
    context.check_hostname = security.check_hostname
    if security.cert_file and security.key_file:
        context.load_cert_chain(str(security.cert_file), str(security.key_file))
    return context


def explain(bootstrap_servers: str, security: KafkaSecurity) -> str:
    """The first step of connecting that fails, as one sentence."""
    host, port = _address(bootstrap_servers)
    where = f"Kafka at {host}:{port} ({security.protocol})"
    try:
        socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S).close()
    except OSError as error:
        return f"{where}: cannot connect: {error.strerror or error}"
    tls = _answers_tls(host, port)
    if tls and not security.uses_tls:
        return (
            f"{where}: the listener speaks TLS but this client is {security.protocol}; "
            "set MASKWATCH_KAFKA_SECURITY__PROTOCOL to SSL or SASL_SSL"
        )
    if security.uses_tls and not tls:
        return f"{where}: the listener does not speak TLS (a PLAINTEXT port?)"
    if security.uses_tls:
        try:
            _handshake(host, port, _client_context(security))
        except ssl.SSLCertVerificationError as error:
            trusted = security.ca_file or "the system CA bundle"
            return f"{where}: broker certificate not trusted by {trusted}: {error.verify_message}"
        except (OSError, ssl.SSLError) as error:
            return f"{where}: TLS handshake failed: {error}"
    if security.uses_sasl:
        return (
            f"{where}: the broker closed the connection at SASL {security.sasl_mechanism} "
            f"login as {security.username!r}: wrong user name or password, or mechanism not "
            "enabled on this listener"
        )
    return f"{where}: the broker did not answer Kafka requests (wrong port or protocol?)"
