"""Soak / fault run: stream a fixed number of frames through the whole pipeline while breaking it.

    .venv/bin/python -m tests.benchmarks.soak [--frames 300] [--rate 2] [--cameras 6]

Runs on a PRIVATE stack (its own Kafka, Redis and model server on free ports, state under
var/soak/), because restarting the broker or stopping Redis would break everyone else using
the shared one. Two detector workers and one aggregator run as real processes; a supervisor
restarts any that exits (as Kubernetes would) and counts the exits it did not cause. While
the load generator streams, in order:

  kill -9 a detector · restart the Kafka broker · stop the model server for 30 s ·
  stop Redis for 10 s (SHUTDOWN SAVE, then start it again from its snapshot) ·
  kill -9 the aggregator · inject corrupt JPEGs, wrong schema versions (a frame and a
  result), oversized frames and frames of an unknown camera (twice, at the start and end).

Then, once Kafka is drained, it verifies and prints: every acknowledged valid frame counted
exactly once in Redis (per-camera frame counters equal the frames sent, and every (camera,
seq) has exactly one dedupe entry); every bad message in the dead-letter topic with the
reason it must have, and no other dead letters; RSS of every process over time. Exit 0 only
if every check holds.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import psutil
import redis
from kafka import KafkaConsumer, TopicPartition

from devtools.probes import group_lag, kafka_probe
from devtools.run import Child, Children, child_env, maskwatch_argv
from runtime.kafka import KafkaSettings, create_topics
from schemas.common import SchemaError, decode
from schemas.dead_letter import DeadLetter
from schemas.redis_state import Keys, counters_of, dedupe_slot
from schemas.result import SUPPORTED_RESULT_VERSIONS, FrameResult
from tests.benchmarks.system.loadgen import SHARED, LoadGen, Sent, inject_bad, load_photos
from tests.benchmarks.system.probes import stack_pids

REPO = Path(__file__).resolve().parents[2]
STATE = REPO / "var" / "soak"
MAX_FRAME_BYTES = 256 * 1024
DETECTOR_GROUP, AGGREGATOR_GROUP = "soak-detectors", "soak-aggregator"
PREFIX = "soak:"


def free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [int(s.getsockname()[1]) for s in sockets]
    for s in sockets:
        s.close()
    return ports


class Soak:
    """The private stack, the stage processes, their supervisor and the event log."""

    def __init__(self, cameras: list[str]) -> None:
        kafka_port, controller, redis_port, grpc, health = free_ports(5)
        self.stack_env = {
            **os.environ,
            "MASKWATCH_STACK_STATE_DIR": str(STATE / "stack"),
            "MASKWATCH_STACK_KAFKA_PORT": str(kafka_port),
            "MASKWATCH_STACK_CONTROLLER_PORT": str(controller),
            "MASKWATCH_STACK_REDIS_PORT": str(redis_port),
            "MASKWATCH_STACK_GRPC_PORT": str(grpc),
            "MASKWATCH_STACK_SERVE_HEALTH_PORT": str(health),
            "MASKWATCH_STACK_KAFKA_HEAP_MB": "512",
            "MASKWATCH_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{kafka_port}",
            "MASKWATCH_KAFKA_MAX_FRAME_BYTES": str(MAX_FRAME_BYTES),
        }
        self.kafka = KafkaSettings(
            bootstrap_servers=f"127.0.0.1:{kafka_port}", max_frame_bytes=MAX_FRAME_BYTES
        )
        self.redis_port = redis_port
        env = child_env(PREFIX, 0) | {
            "MASKWATCH_KAFKA_BOOTSTRAP_SERVERS": self.kafka.bootstrap_servers,
            "MASKWATCH_KAFKA_MAX_FRAME_BYTES": str(MAX_FRAME_BYTES),
            "MASKWATCH_DETECTOR_GROUP_ID": DETECTOR_GROUP,
            "MASKWATCH_DETECTOR_MODEL_SERVER": f"127.0.0.1:{grpc}",
            "MASKWATCH_DETECTOR_KNOWN_CAMERAS": json.dumps(cameras),
            # as the README's soak ran
            "MASKWATCH_DETECTOR_DETECTOR__BACKEND": "retinaface-mobilenet",
            "MASKWATCH_DETECTOR_DETECTOR__MODEL_PATH": str(
                SHARED / "models" / "retinaface_mnet025.onnx"
            ),
            # Frames wait longer in the crop batcher, so rebalances catch some in it.
            "MASKWATCH_DETECTOR_MAX_BATCH_WAIT_MS": "500",
            "MASKWATCH_AGGREGATOR_GROUP_ID": AGGREGATOR_GROUP,
            "MASKWATCH_AGGREGATOR_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        }
        shutil.rmtree(STATE / "logs", ignore_errors=True)
        (STATE / "logs").mkdir(parents=True)
        self.children = Children(STATE / "logs", env)
        self.started = time.monotonic()
        self.events: list[str] = []
        self.unexpected_exits: list[str] = []
        self.killed: set[int] = set()
        self.rss: dict[str, list[tuple[float, float]]] = {}
        self._stop = threading.Event()
        self._lock = threading.Lock()

    def log(self, text: str) -> None:
        line = f"[{time.monotonic() - self.started:6.1f} s] {text}"
        self.events.append(line)
        click.echo(line)

    # ---------------------------------------------------------------- stack

    def stack(self, action: str, *extra: str) -> None:
        done = subprocess.run(
            [*maskwatch_argv(), "stack", action, *extra],
            env=self.stack_env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        if done.returncode != 0:
            raise click.ClickException(f"stack {action} failed:\n{done.stdout}\n{done.stderr}")

    def stack_pid(self, name: str) -> int:
        pid = stack_pids(STATE / "stack").get(name)
        if pid is None:
            raise click.ClickException(f"no pid file for {name}")
        return pid

    def stop_service(self, name: str, group: bool) -> None:
        pid = self.stack_pid(name)
        with contextlib.suppress(ProcessLookupError):
            (os.killpg if group else os.kill)(pid, signal.SIGTERM)
        with contextlib.suppress(psutil.Error):
            psutil.Process(pid).wait(90)

    # ---------------------------------------------------------------- stages

    def start(self, name: str, role: str) -> Child:
        return self.children.start(
            name, role, [role], {"MASKWATCH_DETECTOR_WORKER_ID": f"soak-{name}-{int(time.time())}"}
        )

    def supervise(self) -> None:
        """Restart any stage that exited (1 s later), like a Deployment would."""
        while not self._stop.wait(1.0):
            with self._lock:
                for child in self.children.dead():
                    self.children.started.remove(child)
                    if child.process.pid not in self.killed:
                        self.unexpected_exits.append(
                            f"{child.name} exited {child.process.returncode}; "
                            f"log {child.log}:\n{child.tail(8)}"
                        )
                        self.log(
                            f"supervisor: {child.name} exited by itself "
                            f"({child.process.returncode})"
                        )
                    self.start(child.name, child.role)
                    self.log(f"supervisor: restarted {child.name}")

    def kill9(self, role: str) -> None:
        with self._lock:
            child = self.children.of(role)[0]
            self.killed.add(child.process.pid)
            child.process.send_signal(signal.SIGKILL)
        self.log(f"fault: kill -9 {child.name} (pid {child.process.pid})")

    def sample_rss(self) -> None:
        while not self._stop.wait(5.0):
            now = time.monotonic() - self.started
            with self._lock:
                pids = {c.name: c.process.pid for c in self.children.started}
            pids |= stack_pids(STATE / "stack")
            for name, pid in pids.items():
                with contextlib.suppress(psutil.Error):
                    rss = psutil.Process(pid).memory_info().rss / 2**20
                    self.rss.setdefault(f"{name}:{pid}", []).append((now, rss))

    def background(self, work: Callable[[], None]) -> threading.Thread:
        thread = threading.Thread(target=work, daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            self.children.stop_all(30)


# ---------------------------------------------------------------- the fault schedule


def faults(soak: Soak, inject: Callable[[], list[Sent]], bad: list[Sent]) -> None:
    time.sleep(10)
    bad += inject()
    soak.log(
        "fault: injected corrupt JPEG, schema version 9 (frame and result), oversized "
        "frame, unknown camera"
    )
    time.sleep(5)
    soak.kill9("detector")
    time.sleep(10)
    soak.log("fault: restarting the Kafka broker")
    soak.stop_service("kafka", group=True)
    soak.log("fault: Kafka stopped")
    soak.stack("up", "--no-model-server")
    soak.log("fault: Kafka back (healthy)")
    time.sleep(10)
    soak.stop_service("model-server", group=True)
    soak.log("fault: model server stopped for 30 s")
    time.sleep(30)
    soak.stack("up")
    soak.log("fault: model server back (healthy)")
    time.sleep(5)
    client = redis.Redis(port=soak.redis_port)
    with contextlib.suppress(redis.ConnectionError):
        client.shutdown(save=True)
    soak.log("fault: Redis stopped (SHUTDOWN SAVE) for 10 s")
    time.sleep(10)
    soak.stack("up", "--no-model-server")
    soak.log("fault: Redis back from its snapshot")
    time.sleep(5)
    soak.kill9("aggregator")
    time.sleep(5)
    bad += inject()
    soak.log("fault: injected the bad messages again")


# ---------------------------------------------------------------- verification


def read_topic(kafka: KafkaSettings, topic: str) -> list[Any]:
    consumer = KafkaConsumer(
        bootstrap_servers=kafka.bootstrap_servers.split(","), enable_auto_commit=False
    )
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(partitions)
        consumer.seek_to_beginning()
        ends = consumer.end_offsets(partitions)
        records: list[Any] = []
        while any(consumer.position(tp) < ends[tp] for tp in partitions):
            for batch in consumer.poll(timeout_ms=1000).values():
                records += batch
        return records
    finally:
        consumer.close()


def verify_counts(client: redis.Redis, valid: list[Sent]) -> tuple[bool, list[str]]:
    keys = Keys(PREFIX)
    lines = [
        f"{'camera':<12} {'sent':>5} {'counted':>7} {'skipped':>7} {'dedupe':>6} "
        f"{'missing':>7} {'faces':>6} {'masked':>6} {'unmasked':>8}"
    ]
    ok = True
    by_camera: dict[str, list[Sent]] = {}
    for sent in valid:
        by_camera.setdefault(sent.camera, []).append(sent)
    for camera, frames in sorted(by_camera.items()):
        totals = counters_of(
            {str(k): str(v) for k, v in client.hgetall(keys.camera_totals(camera)).items()}
        )
        pipe = client.pipeline(transaction=False)
        for sent in frames:
            block, field = dedupe_slot(sent.captured_at, sent.seq)
            pipe.hexists(keys.seen(camera, block), str(field))
        missing = sum(1 for present in pipe.execute() if not present)
        entries = sum(
            int(client.hlen(k))
            for k in client.scan_iter(match=keys.seen(camera, 0)[:-1] + "*", count=1000)
        )
        good = (
            totals.frames == len(frames)
            and missing == 0
            and entries == len(frames)
            and totals.faces == totals.with_mask + totals.without_mask
        )
        ok &= good
        lines.append(
            f"{camera:<12} {len(frames):>5} {totals.frames:>7} {totals.skipped:>7} "
            f"{entries:>6} {missing:>7} {totals.faces:>6} {totals.with_mask:>6} "
            f"{totals.without_mask:>8}  {'ok' if good else 'MISMATCH'}"
        )
    return ok, lines


def verify_dead_letters(kafka: KafkaSettings, bad: list[Sent]) -> tuple[bool, list[str]]:
    letters = [
        decode(DeadLetter, r.value, frozenset({1}))
        for r in read_topic(kafka, kafka.dead_letter_topic)
    ]
    by_origin = {(d.source_topic, d.partition, d.offset): d for d in letters}
    lines, ok, matched = [], True, set()
    for sent in bad:
        meta = sent.future.get(timeout=0)
        origin = (meta.topic, meta.partition, meta.offset)
        letter = by_origin.get(origin)
        good = letter is not None and letter.reason.value == sent.kind
        ok &= good
        matched.add(origin)
        got = "none" if letter is None else f"{letter.reason.value} by {letter.stage}"
        lines.append(
            f"{meta.topic.split('.')[-1]:<8} {sent.kind:<27} → {got:<36} "
            f"{'ok' if good else 'MISSING/WRONG'}"
        )
    extra = [d for key, d in by_origin.items() if key not in matched]
    for letter in extra:
        lines.append(f"UNEXPECTED dead letter: {letter.reason.value} {letter.message[:80]}")
    return ok and not extra, lines


def log_events(logs: Path) -> list[str]:
    """What the stages logged about recovering: batched frames discarded at a revoke, partitions
    rewound to re-read them, Kafka / Redis / model server outages waited out."""
    counts: Counter[str] = Counter()
    for path in logs.glob("*.log"):
        for line in path.read_text(errors="replace").splitlines():
            if not line.startswith("{"):
                continue
            with contextlib.suppress(ValueError):
                event = json.loads(line)
                name = f"{path.stem.split('-')[0]}: {event.get('event')}"
                if event.get("event") == "partitions_revoked":
                    counts["detector: frames discarded at a revoke"] += event["dropped_frames"]
                elif event.get("event") in {
                    "partition_rewound",
                    "kafka_unavailable",
                    "redis_unavailable",
                    "model_server_unavailable",
                    "commit_failed",
                    "dead_letter",
                }:
                    counts[name] += 1
    return [f"{n:>5}  {name}" for name, n in sorted(counts.items())]


def verify_memory(rss: dict[str, list[tuple[float, float]]]) -> tuple[bool, list[str]]:
    """Per process (name:pid): RSS first, max, last. 'Grew without bound' is judged on
    processes that lived ≥ 60 s: flagged if RSS over the last third still exceeds the first
    third's by more than 25 % + 50 MiB (a steady climb, not a warm-up step)."""
    lines = [f"{'process':<28} {'lived s':>7} {'first MB':>8} {'max MB':>7} {'last MB':>7}"]
    ok = True
    for name, trace in sorted(rss.items()):
        lived = trace[-1][0] - trace[0][0]
        values = [v for _, v in trace]
        flag = ""
        if lived >= 60 and len(values) >= 6:
            third = len(values) // 3
            early, late = max(values[:third]), min(values[-third:])
            if late > early * 1.25 + 50:
                flag, ok = "  GROWING", False
        lines.append(
            f"{name:<28} {lived:>7.0f} {values[0]:>8.0f} {max(values):>7.0f} "
            f"{values[-1]:>7.0f}{flag}"
        )
    return ok, lines


# ---------------------------------------------------------------- main


@click.command()
@click.option("--frames", default=300, show_default=True, help="Valid frames to stream.")
@click.option("--rate", default=2.0, show_default=True, help="Frames per second, all cameras.")
@click.option("--cameras", "camera_count", default=6, show_default=True)
@click.option("--drain-timeout", default=300.0, show_default=True)
def main(frames: int, rate: float, camera_count: int, drain_timeout: float) -> None:
    cameras = [f"soak-cam-{i}" for i in range(camera_count)]
    soak = Soak(cameras)
    click.echo(
        f"soak: private stack under {STATE} (Kafka {soak.kafka.bootstrap_servers}, "
        f"Redis :{soak.redis_port}); {frames} frames at {rate}/s over {camera_count} "
        "cameras"
    )
    soak.stack("down", "--wipe")
    soak.stack("up")
    create_topics(soak.kafka)
    soak.log("private stack up")
    photos = load_photos(16)
    gen = LoadGen(soak.kafka, cameras, photos)
    bad: list[Sent] = []
    passed = False
    try:
        soak.start("aggregator", "aggregator")
        soak.start("detector-0", "detector")
        soak.start("detector-1", "detector")
        soak.background(soak.supervise)
        soak.background(soak.sample_rss)
        streamer = soak.background(
            lambda: soak.log(
                f"load generator: done, {gen.stream(rate_fps=rate, frames=frames)} frames sent"
            )
        )
        soak.log("streaming")

        def inject() -> list[Sent]:
            return inject_bad(gen, photos[0], cameras[0], soak.kafka.results_topic, MAX_FRAME_BYTES)

        faults(soak, inject, bad)
        streamer.join()
        valid, failed = gen.acknowledged("valid")
        soak.log(f"{len(valid)} valid frames acknowledged by Kafka, {len(failed)} not")
        client = redis.Redis(port=soak.redis_port, decode_responses=True)
        deadline = time.monotonic() + drain_timeout
        with kafka_probe(soak.kafka) as (admin, consumer):
            while time.monotonic() < deadline:
                lags = (
                    group_lag(admin, consumer, DETECTOR_GROUP, soak.kafka.frames_topic),
                    group_lag(admin, consumer, AGGREGATOR_GROUP, soak.kafka.results_topic),
                )
                if lags == (0, 0):
                    break
                time.sleep(2)
        soak.log(f"drained: detector lag {lags[0]}, aggregator lag {lags[1]}")
        time.sleep(3)
        results = []
        for record in read_topic(soak.kafka, soak.kafka.results_topic):
            with contextlib.suppress(SchemaError):  # the injected bad result
                results.append(decode(FrameResult, record.value, SUPPORTED_RESULT_VERSIONS))
        unique = Counter((r.camera_id, r.seq) for r in results)
        counts_ok, count_lines = verify_counts(client, valid)
        dl_ok, dl_lines = verify_dead_letters(soak.kafka, bad)
    finally:
        soak.stop()
    mem_ok, mem_lines = verify_memory(soak.rss)
    soak.stack("down")
    click.echo("\n== events\n" + "\n".join(soak.events))
    click.echo(
        f"\n== exactly once: {len(valid)} valid frames sent and acknowledged; results "
        f"topic holds {len(results)} results for {len(unique)} distinct frames "
        f"({len(results) - len(unique)} redelivered duplicates, absorbed by the dedupe)"
    )
    click.echo("\n".join(count_lines))
    click.echo(f"\n== dead letters ({len(bad)} bad messages injected)\n" + "\n".join(dl_lines))
    click.echo("\n== recovery events in the stage logs\n" + "\n".join(log_events(STATE / "logs")))
    click.echo(
        "\n== memory (RSS sampled every 5 s; name:pid, a restart is a new pid)\n"
        + "\n".join(mem_lines)
    )
    click.echo(
        f"\nunexpected stage exits (restarted by the supervisor): {len(soak.unexpected_exits)}"
    )
    for text in soak.unexpected_exits:
        click.echo(text)
    passed = counts_ok and dl_ok and mem_ok and not failed
    click.echo(
        f"\nsoak: counts {'PASS' if counts_ok else 'FAIL'}, dead letters "
        f"{'PASS' if dl_ok else 'FAIL'}, memory {'PASS' if mem_ok else 'FAIL'}"
    )
    raise SystemExit(0 if passed else 1)


if __name__ == "__main__":
    main()
