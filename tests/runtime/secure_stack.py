"""A private local stack with Kafka SASL_SSL (SCRAM) and Redis TLS + AUTH, for the tests of
secure connections (the shared stack is plaintext and must not be restarted)."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.stack import kafka_libs
from devtools.stack_security import SCRAM_USER, StackTls, ensure_tls
from devtools.stack_settings import StackSettings
from runtime.kafka import KafkaSettings
from runtime.kafka_security import KafkaSecurity
from runtime.redis import RedisSecurity, RedisState

MASKWATCH = [sys.executable, "-c", "from workers.cli import main; main()"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class SecureStack:
    """Ports and credentials of the private stack."""

    def __init__(self, state_dir: Path) -> None:
        names = ("kafka", "controller", "sasl", "redis", "redis_tls", "grpc", "serve_health")
        self.ports = {name: free_port() for name in names}
        self.state_dir = state_dir
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("MASKWATCH_")},
            "MASKWATCH_STACK_STATE_DIR": str(state_dir),
            "MASKWATCH_STACK_KAFKA_PORT": str(self.ports["kafka"]),
            "MASKWATCH_STACK_CONTROLLER_PORT": str(self.ports["controller"]),
            "MASKWATCH_STACK_KAFKA_SASL_PORT": str(self.ports["sasl"]),
            "MASKWATCH_STACK_REDIS_PORT": str(self.ports["redis"]),
            "MASKWATCH_STACK_REDIS_TLS_PORT": str(self.ports["redis_tls"]),
            "MASKWATCH_STACK_GRPC_PORT": str(self.ports["grpc"]),
            "MASKWATCH_STACK_SERVE_HEALTH_PORT": str(self.ports["serve_health"]),
            "MASKWATCH_STACK_KAFKA_HEAP_MB": "256",
            "MASKWATCH_STACK_MODEL_SERVER": "false",
        }

    @property
    def tls(self) -> StackTls:
        return ensure_tls(self.state_dir / "tls")

    def stack(self, command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*MASKWATCH, "stack", command],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=400,
            check=False,
        )

    def kafka(self, **security: object) -> KafkaSettings:
        """SASL_SSL settings with the stack's user, password file and CA, `security` over them."""
        given: dict[str, object] = {
            "protocol": "SASL_SSL",
            "username": SCRAM_USER,
            "password_file": self.tls.secret("kafka-password"),
            "ca_file": self.tls.ca_file,
            **security,
        }
        prefix = f"test-secure-{uuid.uuid4().hex[:8]}"
        topics = KafkaSettings.with_topic_prefix(prefix, partitions=1)
        return topics.model_copy(
            update={
                "bootstrap_servers": f"127.0.0.1:{self.ports['sasl']}",
                "security": KafkaSecurity.model_validate(given),
            }
        )

    def redis_state(self, url: str | None = None, **security: object) -> RedisState:
        given: dict[str, object] = {
            "password_file": self.tls.secret("redis-password"),
            "ca_file": self.tls.ca_file,
            **security,
        }
        return RedisState(
            redis_url=url or f"rediss://127.0.0.1:{self.ports['redis_tls']}/0",
            redis_security=RedisSecurity.model_validate(given),
        )


@contextlib.contextmanager
def secure_stack(state_dir: Path) -> Iterator[SecureStack]:
    """`maskwatch stack up` with a SASL_SSL listener and Redis TLS on free ports; down after."""
    if not (kafka_libs(StackSettings()) / ".complete").exists():
        pytest.fail("Kafka jars missing: run `bash deploy/local/install.sh`")
    stack = SecureStack(state_dir)
    try:
        up = stack.stack("up")
        assert up.returncode == 0, up.stdout + up.stderr
        assert f"SASL_SSL on 127.0.0.1:{stack.ports['sasl']}" in up.stdout
        yield stack
    finally:
        down = stack.stack("down")
        assert down.returncode == 0, down.stdout + down.stderr
