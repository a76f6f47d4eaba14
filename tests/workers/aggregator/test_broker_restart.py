"""The aggregator across a restart of its Kafka broker, on a private stack (other ports).

The stack the other tests share must never be restarted, so this test brings up its own
Kafka and Redis with `maskwatch stack up` (as tests/devtools/test_stack.py does), stops the
broker under a running aggregator, and brings it back: the aggregator stays up, and
afterwards every result is counted exactly once and committed. It should also report not
ready while the broker is gone; it does not yet, so that one check ends the test as an
expected failure (after everything else has passed) until the run loop learns it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from devtools.stack import kafka_libs
from devtools.stack_settings import StackSettings
from runtime.kafka import KafkaSettings, create_topics
from tests.recovery import committed_offsets, end_offsets
from tests.workers.aggregator.test_recovery import REPO, publish_placed, wait_for
from tests.workers.aggregator.test_service import expected, free_port, totals
from workers.aggregator.synthetic import stream

pytestmark = pytest.mark.integration
UNREADY_WITHIN_S = 30.0


def http_status(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except OSError:
        return 0


@dataclass
class PrivateStack:
    env: dict[str, str]
    state: Path
    kafka: KafkaSettings
    redis_port: int

    def run(self, command: str) -> None:
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
        os.kill(pid, signal.SIGTERM)
        wait_for(lambda: not Path(f"/proc/{pid}").exists(), 120, "the broker to stop")


@pytest.fixture
def private_stack(tmp_path: Path) -> Iterator[PrivateStack]:
    if not (kafka_libs(StackSettings()) / ".complete").exists():
        pytest.fail("Kafka jars missing: run `bash deploy/local/install.sh`")
    ports = {n: free_port() for n in ("kafka", "controller", "redis", "grpc", "serve_health")}
    state = tmp_path / "stack"
    env = {
        **os.environ,
        "MASKWATCH_STACK_STATE_DIR": str(state),
        **{f"MASKWATCH_STACK_{name.upper()}_PORT": str(port) for name, port in ports.items()},
        "MASKWATCH_STACK_KAFKA_HEAP_MB": "256",
        "MASKWATCH_STACK_MODEL_SERVER": "false",
    }
    kafka = KafkaSettings.with_topic_prefix("restart", partitions=3).model_copy(
        update={"bootstrap_servers": f"127.0.0.1:{ports['kafka']}"}
    )
    stack = PrivateStack(env, state, kafka, ports["redis"])
    try:
        stack.run("up")
        create_topics(kafka)
        yield stack
    finally:
        stack.run("down")


def test_broker_restart_under_a_running_aggregator_loses_and_doubles_nothing(
    private_stack: PrivateStack, tmp_path: Path
) -> None:
    kafka, group, prefix = private_stack.kafka, "agg-restart", "r:"
    client = redis.Redis(port=private_stack.redis_port, decode_responses=True)
    port = free_port()
    env = {
        **os.environ,
        "MASKWATCH_KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "MASKWATCH_KAFKA_RESULTS_TOPIC": kafka.results_topic,
        "MASKWATCH_KAFKA_DEAD_LETTER_TOPIC": kafka.dead_letter_topic,
        "MASKWATCH_KAFKA_ALERTS_TOPIC": kafka.alerts_topic,
        "MASKWATCH_AGGREGATOR_REDIS_URL": f"redis://127.0.0.1:{private_stack.redis_port}/0",
        "MASKWATCH_AGGREGATOR_KEY_PREFIX": prefix,
        "MASKWATCH_AGGREGATOR_GROUP_ID": group,
        "MASKWATCH_AGGREGATOR_RUNTIME__HEALTH_PORT": str(port),
    }
    log = tmp_path / "aggregator.log"
    results = stream([f"b-{i}" for i in range(6)], 100, time.time() - 600, fps=5)
    before, after = results[: len(results) // 2], results[len(results) // 2 :]
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-c", "from workers.cli import main; main()", "aggregator"],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        publish_placed(kafka, before)
        wait_for(lambda: totals(client, prefix) == expected(before), 120, "the first half")

        private_stack.stop_kafka()
        deadline = time.monotonic() + UNREADY_WITHIN_S
        while http_status(port, "/readyz") != 503 and time.monotonic() < deadline:
            time.sleep(0.5)
        went_unready = http_status(port, "/readyz") == 503
        assert process.poll() is None, log.read_text()[-3000:]
        assert http_status(port, "/healthz") == 200  # alive, waiting

        private_stack.run("up")  # the broker comes back with its data
        wait_for(lambda: http_status(port, "/readyz") == 200, 120, "ready again")
        publish_placed(kafka, after)
        ends = end_offsets(kafka, kafka.results_topic, 3)
        wait_for(
            lambda: committed_offsets(kafka, group, kafka.results_topic) == ends,
            120,
            "every result committed after the restart",
        )
        assert totals(client, prefix) == expected(results)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0, log.read_text()[-3000:]
        if not went_unready:  # the rest held; only the readiness report is missing
            pytest.xfail(
                f"known gap: /readyz stayed 200 for {UNREADY_WITHIN_S:.0f} s without a broker "
                "(kafka-python's poll does not raise; the loop needs a broker check)"
            )
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        client.close()
