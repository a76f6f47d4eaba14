"""Kafka over SASL_SSL (SCRAM) and Redis over TLS + AUTH, against a private local stack.

The stack the other tests share is plaintext and must not be restarted, so this module brings
up its own (`maskwatch stack up --kafka-sasl-port ... --redis-tls-port ...` on free ports,
in a temporary state dir) and takes it down at the end. The refusals are asserted by their
message: an operator must be able to tell a wrong password from an untrusted certificate.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from pydantic import SecretStr

from devtools.stack_security import ensure_tls
from runtime.kafka import (
    create_topics,
    delete_topics,
    make_consumer,
    make_producer,
)
from runtime.kafka_check import KafkaConnectError
from runtime.kafka_security import KafkaSecurity
from runtime.redis import RedisState
from tests.runtime.secure_stack import SecureStack, secure_stack

pytestmark = pytest.mark.integration
QUICK = {"bootstrap_timeout_ms": 5_000}


@pytest.fixture(scope="module")
def secure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureStack]:
    with secure_stack(tmp_path_factory.mktemp("secure") / "stack") as stack:
        yield stack


def test_produce_and_consume_over_sasl_ssl(secure: SecureStack) -> None:
    settings = secure.kafka()
    assert set(create_topics(settings).values()) == {"created"}
    try:
        producer = make_producer(settings, "test-secure-producer", **QUICK)
        payloads = [f"frame-{i}".encode() for i in range(5)]
        for payload in payloads:
            producer.send(settings.frames_topic, payload, key=b"cam-1")
        producer.flush(30)
        producer.close()
        consumer = make_consumer(
            settings,
            f"{settings.frames_topic}-group",
            "test-secure-consumer",
            settings.frames_topic,
            **QUICK,
        )
        got: list[bytes] = []
        for _ in range(30):
            for records in consumer.poll(timeout_ms=1_000).values():
                got += [r.value for r in records]
            if len(got) >= len(payloads):
                break
        consumer.close()
        assert got == payloads
    finally:
        delete_topics(settings, [settings.frames_topic, settings.results_topic])


def test_mutual_tls_client_certificate_is_accepted(secure: SecureStack) -> None:
    settings = secure.kafka(cert_file=secure.tls.client_cert, key_file=secure.tls.client_key)
    make_producer(settings, "test-secure-mtls", **QUICK).close()


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("wrong-password", "SASL SCRAM-SHA-512 login as 'maskwatch': wrong user name or password"),
        ("unknown-ca", "broker certificate not trusted by"),
        ("plaintext", "the listener speaks TLS but this client is PLAINTEXT"),
    ],
)
def test_kafka_refuses_with_a_clear_error(
    secure: SecureStack, tmp_path: Path, case: str, expected: str
) -> None:
    if case == "wrong-password":
        settings = secure.kafka(password=SecretStr("not-the-password"), password_file=None)
    elif case == "unknown-ca":
        settings = secure.kafka(ca_file=ensure_tls(tmp_path / "other").ca_file)
    else:
        settings = secure.kafka().model_copy(update={"security": KafkaSecurity()})
    with pytest.raises(KafkaConnectError, match=expected) as error:
        make_producer(settings, "test-secure-refused", **QUICK)
    assert "not-the-password" not in str(error.value)
    assert secure.tls.secret("kafka-password").read_text() not in str(error.value)


def test_redis_over_tls_with_auth(secure: SecureStack) -> None:
    state = secure.redis_state(cert_file=secure.tls.client_cert, key_file=secure.tls.client_key)
    client = redis.Redis.from_url(state.redis_url, socket_timeout=5, **state.redis_options())
    key = f"test-secure-{uuid.uuid4().hex[:8]}"
    assert client.set(key, "1", ex=60)
    assert client.get(key) == b"1"
    assert client.connection_pool.connection_kwargs["ssl_ca_certs"] == str(secure.tls.ca_file)
    client.close()


@pytest.mark.parametrize(
    ("case", "error", "expected"),
    [
        ("wrong-password", redis.AuthenticationError, "invalid username-password pair"),
        ("no-password", redis.AuthenticationError, "authenticated"),
        ("unknown-ca", redis.ConnectionError, "CERTIFICATE_VERIFY_FAILED"),
        ("plaintext-client", redis.ConnectionError, "Connection reset by peer|Connection closed"),
        ("plaintext-port", redis.AuthenticationError, "Authentication required|authenticated"),
    ],
)
def test_redis_refuses_with_a_clear_error(
    secure: SecureStack, tmp_path: Path, case: str, error: type[Exception], expected: str
) -> None:
    tls_url = f"rediss://127.0.0.1:{secure.ports['redis_tls']}/0"
    state = {
        "wrong-password": lambda: secure.redis_state(
            password=SecretStr("not-the-password"), password_file=None
        ),
        "no-password": lambda: secure.redis_state(password_file=None),
        "unknown-ca": lambda: secure.redis_state(ca_file=ensure_tls(tmp_path / "o").ca_file),
        "plaintext-client": lambda: RedisState(redis_url=tls_url.replace("rediss", "redis", 1)),
        "plaintext-port": lambda: RedisState(
            redis_url=f"redis://127.0.0.1:{secure.ports['redis']}/0"
        ),
    }[case]()
    client = redis.Redis.from_url(state.redis_url, socket_timeout=5, **state.redis_options())
    with pytest.raises(error, match=expected):
        client.ping()
    client.close()
