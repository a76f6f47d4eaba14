"""`maskwatch stack`: its Kafka config and, on free ports, a whole second stack up and down."""

from __future__ import annotations

import base64
import os
import socket
import string
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from devtools.processes import alive
from devtools.stack import (
    LOCAL_DIR,
    _cluster_id,
    kafka_libs,
    kafka_version,
)
from devtools.stack_settings import StackSettings
from runtime.kafka import KafkaSettings, broker_info


def test_kafka_version_is_4x() -> None:
    major, minor, *_ = kafka_version().split(".")
    assert (int(major), int(minor)) >= (4, 0)
    assert kafka_libs(StackSettings()).name == "libs"


def test_broker_config_renders_for_a_single_node() -> None:
    text = string.Template((LOCAL_DIR / "kafka.properties").read_text()).substitute(
        host="127.0.0.1", kafka_port=1, controller_port=2, data_dir="/d"
    )
    config = dict(
        line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#")
    )
    assert config["process.roles"] == "broker,controller"
    assert config["listeners"] == "PLAINTEXT://127.0.0.1:1,CONTROLLER://127.0.0.1:2"
    assert config["group.initial.rebalance.delay.ms"] == "0"
    for key in (
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
        "transaction.state.log.min.isr",
        "share.coordinator.state.topic.replication.factor",
    ):
        assert config[key] == "1", key
    assert config["auto.create.topics.enable"] == "false"


def test_cluster_ids_are_uuids_in_kafka_form() -> None:
    ids = {_cluster_id() for _ in range(20)}
    assert len(ids) == 20
    for cluster_id in ids:
        assert len(cluster_id) == 22
        uuid.UUID(bytes=base64.urlsafe_b64decode(cluster_id + "=="))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.integration
def test_a_second_stack_comes_up_and_leaves_nothing_behind(tmp_path: Path) -> None:
    """A full `up` / `status` / `up` / `down` on free ports, beside the stack the tests use."""
    if not (kafka_libs(StackSettings()) / ".complete").exists():
        pytest.fail("Kafka jars missing: run `bash deploy/local/install.sh`")
    names = ("kafka", "controller", "redis", "grpc", "serve_health")
    ports = {name: _free_port() for name in names}
    env = {
        **os.environ,
        "MASKWATCH_STACK_STATE_DIR": str(tmp_path / "stack"),
        "MASKWATCH_STACK_KAFKA_PORT": str(ports["kafka"]),
        "MASKWATCH_STACK_CONTROLLER_PORT": str(ports["controller"]),
        "MASKWATCH_STACK_REDIS_PORT": str(ports["redis"]),
        "MASKWATCH_STACK_GRPC_PORT": str(ports["grpc"]),
        "MASKWATCH_STACK_SERVE_HEALTH_PORT": str(ports["serve_health"]),
        "MASKWATCH_STACK_KAFKA_HEAP_MB": "256",
        "MASKWATCH_STACK_MODEL_SERVER": "false",
    }
    maskwatch = [sys.executable, "-c", "from workers.cli import main; main()", "stack"]

    def stack(command: str) -> subprocess.CompletedProcess[str]:
        began = time.monotonic()
        done = subprocess.run(
            [*maskwatch, command], env=env, capture_output=True, text=True, timeout=300, check=False
        )
        print(f"stack {command}: exit {done.returncode} in {time.monotonic() - began:.1f} s")
        return done

    try:
        first = stack("up")
        assert first.returncode == 0, first.stdout + first.stderr
        status = stack("status")
        assert status.returncode == 0, status.stdout
        assert "kafka: broker 4." in status.stdout
        info = broker_info(KafkaSettings(bootstrap_servers=f"127.0.0.1:{ports['kafka']}"))
        assert info.version[0] == 4
        again = stack("up")
        assert again.returncode == 0, again.stderr
        assert "kafka: running" in again.stdout and "redis: running" in again.stdout
        pids = [
            int((tmp_path / "stack" / f"{name}/{name}.pid").read_text())
            for name in ("kafka", "redis")
        ]
        assert all(alive(pid) for pid in pids)
    finally:
        down = stack("down")
    assert down.returncode == 0, down.stdout + down.stderr
    assert not any(alive(pid) for pid in pids), "a stack process outlived `down`"
    assert not any(_port_open(port) for port in ports.values())
    assert stack("status").returncode == 1
