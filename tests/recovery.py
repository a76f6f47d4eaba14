"""Helpers of the exact recovery tests: what the broker knows about a group, and freezing a
worker at a point where it holds uncommitted work.

A recovery test must pin what a crash leaves behind, not just that "everything arrived in the
end": the broker's committed offsets at the moment of the kill decide what the group re-reads.
`freeze_holding` stops a worker process with SIGSTOP (no instruction of it runs, nothing more
is sent or committed), lets anything it sent before the stop reach the broker, and keeps it
stopped only if the caller's check finds work past the committed offsets; otherwise it lets
the worker run a little longer and tries again. The caller then kills it with SIGKILL.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from runtime.kafka import KafkaSettings, make_admin

REPO = Path(__file__).resolve().parents[1]
"""This checkout: stages run from its code, not from whichever one the venv was installed from."""

COORDINATOR_WAIT_S = 30.0
SETTLE_S = 0.3
"""After SIGSTOP: time for requests already written to a socket (a commit, a produce) to be
handled by the local broker, so the offsets read next are the ones the kill leaves."""


def committed_offsets(kafka: KafkaSettings, group: str, topic: str) -> dict[int, int]:
    """partition → offset the broker holds committed for `group` (absent: nothing committed).

    Asked again for up to COORDINATOR_WAIT_S while the group's coordinator is not there yet
    (a fresh broker still loading its offsets topic answers NOT_COORDINATOR)."""
    deadline = time.monotonic() + COORDINATOR_WAIT_S
    while True:
        admin = make_admin(kafka)
        try:
            offsets = admin.list_group_offsets({group: None}).get(group, {})
            break
        except KafkaError as error:
            if not error.retriable or time.monotonic() > deadline:
                raise
            time.sleep(0.5)
        finally:
            admin.close()
    return {tp.partition: int(o.offset) for tp, o in offsets.items() if tp.topic == topic}


def end_offsets(kafka: KafkaSettings, topic: str, partitions: int) -> dict[int, int]:
    """partition → next offset to be written (the high watermark)."""
    consumer = KafkaConsumer(bootstrap_servers=kafka.bootstrap_servers.split(","))
    try:
        ends = consumer.end_offsets([TopicPartition(topic, p) for p in range(partitions)])
    finally:
        consumer.close()
    return {tp.partition: int(offset) for tp, offset in ends.items()}


def group_members(kafka: KafkaSettings, group: str) -> tuple[str, dict[str, set[int]]]:
    """(group state, client id → partitions assigned to that member)."""
    admin = make_admin(kafka)
    try:
        info = admin.describe_groups([group]).get(group, {})
    finally:
        admin.close()
    members: dict[str, set[int]] = {}
    for member in info.get("members") or []:
        assignment = member.get("member_assignment") or {}
        owned = members.setdefault(str(member.get("client_id")), set())
        for topic in assignment.get("assigned_partitions") or []:
            owned.update(int(p) for p in topic.get("partitions") or [])
    return str(info.get("group_state") or ""), members


def stable_assignment(
    kafka: KafkaSettings, group: str, clients: Iterable[str], timeout_s: float
) -> dict[str, set[int]]:
    """Wait until the group is Stable with exactly `clients` as members, each owning at
    least one partition; return their assignments."""
    wanted = set(clients)
    deadline = time.monotonic() + timeout_s
    while True:
        state, members = group_members(kafka, group)
        if state == "Stable" and set(members) == wanted and all(members.values()):
            return members
        if time.monotonic() > deadline:
            raise AssertionError(f"group {group} not stable with {wanted}: {state} {members}")
        time.sleep(0.5)


def freeze_holding(
    process: subprocess.Popen[bytes], holding: Callable[[], bool], timeout_s: float
) -> None:
    """Leave `process` stopped (SIGSTOP) at a moment where `holding()` is true.

    Between tries the process runs for a short, growing time (from 20 ms), so the stop lands
    at a different point of its poll → work → commit loop each time. A caller whose worker
    would finish in well under a second stops it (SIGSTOP) before giving it the input.
    """
    deadline = time.monotonic() + timeout_s
    run_s = 0.02
    while True:
        if process.poll() is not None:
            raise AssertionError(f"worker exited {process.returncode} before it could be frozen")
        os.kill(process.pid, signal.SIGSTOP)
        time.sleep(SETTLE_S)
        if holding():
            return
        os.kill(process.pid, signal.SIGCONT)
        if time.monotonic() > deadline:
            raise AssertionError(f"never caught the worker holding uncommitted work ({timeout_s}s)")
        time.sleep(run_s)
        run_s = min(run_s * 1.2, 1.0)


def kill_9(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL (it acts on a stopped process too) and reap it."""
    process.kill()
    process.wait(timeout=30)


@dataclass(frozen=True)
class Place:
    """Where a record was written: partition and offset."""

    partition: int
    offset: int


def metric(text: str, name: str, labels: str = "") -> float:
    """The value of one sample in Prometheus text (`labels` as written: 'outcome="applied"');
    0.0 when the sample is absent (a counter never incremented is not exported)."""
    pattern = re.escape(name + (f"{{{labels}}}" if labels else "")) + r" ([0-9.eE+-]+)\n"
    found = re.search(pattern, text)
    return float(found.group(1)) if found else 0.0


def metrics_of(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return str(response.read().decode())


def read_to_end(kafka: KafkaSettings, topic: str, partitions: int) -> list[bytes]:
    """Every value in `topic` up to its end offsets as of the call (all partitions)."""
    return [record.value for record in records_to_end(kafka, topic, partitions)]


def records_to_end(kafka: KafkaSettings, topic: str, partitions: int) -> list[Any]:
    """Every record (value, key, headers, …) in `topic` up to its end offsets as of the call."""
    ends = end_offsets(kafka, topic, partitions)
    consumer = KafkaConsumer(
        bootstrap_servers=kafka.bootstrap_servers.split(","), auto_offset_reset="earliest"
    )
    assigned = [TopicPartition(topic, p) for p in range(partitions)]
    consumer.assign(assigned)
    records: list[Any] = []
    try:
        while any(consumer.position(tp) < ends[tp.partition] for tp in assigned):
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
    finally:
        consumer.close()
    return records


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Poll `condition` every 0.1 s until true; fail the test naming `what` after timeout_s."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(0.1)


def free_port() -> int:
    """A TCP port nothing listens on now (for a service's health or a private server)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def http_status(port: int, path: str) -> int:
    """The status of GET `path` on a service's health port; 0 if nothing answers."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except OSError:
        return 0


def start_stage(stage: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """`maskwatch <stage>` of this checkout as a process, stdout and stderr into `log`."""
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-c", "from workers.cli import main; main()", stage],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def stop_stage(process: subprocess.Popen[bytes], timeout_s: float = 60) -> int:
    """SIGTERM (a graceful drain), SIGKILL if it is not gone in `timeout_s`; the exit code."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


def committed_to_end(kafka: KafkaSettings, group: str, topic: str, partitions: int) -> bool:
    """Whether `group` has committed every partition of `topic` up to its end offset."""
    ends = end_offsets(kafka, topic, partitions)
    committed = committed_offsets(kafka, group, topic)
    return all(committed.get(p, 0) >= end for p, end in ends.items())
