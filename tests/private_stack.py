"""A private Kafka + Redis for the tests that restart a broker (registered in tests/conftest.py).

The stack every other test shares must never be restarted, so broker-restart tests get
their own, brought up with `maskwatch stack up` on free ports with its own state folder (as
tests/devtools/test_stack.py does). One per session, shared by every test that asks for it:
each JVM start costs minutes on a 2-core CI runner, and every test still uses its own topics,
group and Redis prefix (`topics`), so tests on it do not see each other's records.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from devtools.stack import kafka_libs
from devtools.stack_settings import StackSettings
from runtime.kafka import KafkaSettings, create_topics
from tests.conftest import missing
from tests.recovery import REPO, free_port, wait_for


@dataclass
class PrivateStack:
    """Kafka and Redis of one test session on ports of their own."""

    env: dict[str, str]
    state: Path
    bootstrap_servers: str
    redis_port: int
    kafka_stopped: bool = False
    """Set by `stop_kafka` until `start_kafka`: the next test's `topics` brings the broker
    back first, so one test failing mid-outage does not fail the others with it."""

    def run(self, command: str) -> None:
        """`maskwatch stack <command>` for this stack (up waits until it is healthy)."""
        done = subprocess.run(
            [sys.executable, "-c", "from workers.cli import main; main()", "stack", command],
            env=self.env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, f"stack {command}: {done.stdout[-2000:]}{done.stderr[-2000:]}"

    def stop_kafka(self) -> None:
        """SIGTERM the broker (a clean broker restart) and wait until it is gone."""
        pid = int((self.state / "kafka" / "kafka.pid").read_text())
        self.kafka_stopped = True
        os.kill(pid, signal.SIGTERM)
        wait_for(lambda: not Path(f"/proc/{pid}").exists(), 120, "the broker to stop")

    def start_kafka(self) -> None:
        """Bring the broker back with its data (Redis, still up, is left as it is)."""
        self.run("up")
        self.kafka_stopped = False

    def topics(self, name: str, partitions: int = 3) -> KafkaSettings:
        """Fresh topics `<name>-<random>.*` on this broker, created."""
        if self.kafka_stopped:
            self.start_kafka()
        kafka = KafkaSettings.with_topic_prefix(
            f"{name}-{uuid.uuid4().hex[:8]}", partitions
        ).model_copy(update={"bootstrap_servers": self.bootstrap_servers})
        create_topics(kafka)
        return kafka

    def kafka_env(self, kafka: KafkaSettings) -> dict[str, str]:
        """The environment that points a stage at `kafka`'s broker and topics."""
        return {
            "MASKWATCH_KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
            "MASKWATCH_KAFKA_FRAMES_TOPIC": kafka.frames_topic,
            "MASKWATCH_KAFKA_RESULTS_TOPIC": kafka.results_topic,
            "MASKWATCH_KAFKA_DEAD_LETTER_TOPIC": kafka.dead_letter_topic,
            "MASKWATCH_KAFKA_ALERTS_TOPIC": kafka.alerts_topic,
            "MASKWATCH_KAFKA_FRAMES_PARTITIONS": str(kafka.frames_partitions),
            "MASKWATCH_KAFKA_RESULTS_PARTITIONS": str(kafka.results_partitions),
        }


@pytest.fixture(scope="session")
def private_stack(
    tmp_path_factory: pytest.TempPathFactory, stack_problem: str | None
) -> Iterator[PrivateStack]:
    """One private Kafka + Redis for the session (see the module doc); down at the end."""
    if stack_problem:  # the shared stack's absence skips (or, in CI, fails) these too
        missing(stack_problem)
    if not (kafka_libs(StackSettings()) / ".complete").exists():
        pytest.fail("Kafka jars missing: run `bash deploy/local/install.sh`")
    ports = {n: free_port() for n in ("kafka", "controller", "redis", "grpc", "serve_health")}
    state = tmp_path_factory.mktemp("private-stack")
    env = {
        **os.environ,
        "MASKWATCH_STACK_STATE_DIR": str(state),
        **{f"MASKWATCH_STACK_{name.upper()}_PORT": str(port) for name, port in ports.items()},
        "MASKWATCH_STACK_KAFKA_HEAP_MB": "256",
        "MASKWATCH_STACK_MODEL_SERVER": "false",
    }
    stack = PrivateStack(env, state, f"127.0.0.1:{ports['kafka']}", ports["redis"])
    try:
        stack.run("up")
        yield stack
    finally:
        stack.run("down")
