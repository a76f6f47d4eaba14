"""Soak / fault run: stream frames through the whole pipeline for long, breaking it again and again.

    .venv/bin/python -m tests.benchmarks.soak [--duration 3600] [--rate 1] [--cameras 6]
    .venv/bin/python -m tests.benchmarks.soak --frames 300 --rate 2     # one pass of faults

Runs on a PRIVATE stack (its own Kafka, Redis and model server on free ports, state under
var/soak/), because restarting the broker or stopping Redis would break everyone else using
the shared one. Two detectors and two aggregators run as real processes; a supervisor
restarts any that exits (as Kubernetes would) and counts the exits it did not cause. Faults
are only ever aimed at `detector-0` and `aggregator-0`, so `detector-1` and `aggregator-1`
live the whole run: they are the witnesses of bounded memory. While the load generator
streams, this cycle of faults repeats (one pass with --frames, until --duration is over
otherwise), `--gap` seconds apart:

  hostile burst · kill -9 detector-0 · hostile burst · restart the Kafka broker · hostile
  burst · stop the model server for 30 s · hostile burst · stop Redis for 10 s (SHUTDOWN
  SAVE, then start it from its snapshot) · hostile burst · kill -9 aggregator-0

A hostile burst is every kind of tests/workers/hostile_inputs.py (58 kinds: headers,
payloads, decompression bombs, undecodable records, results) `--copies` times, plus the
load generator's bad frames (corrupt JPEG, schema version 9, oversized, unknown camera, a
result of schema version 9), interleaved with the valid stream.

Once Kafka is drained it verifies and prints: every acknowledged valid frame counted exactly
once in Redis (per-camera counters equal the frames sent, one dedupe entry per (camera,
seq)); every hostile record in the dead-letter topic with the reason it must have, and no
other dead letters; RSS of every process over time; exits it did not cause. A progress line
per minute and a checkpoint (rss.json) keep a partial run as evidence; the report, the RSS
trace and its plot go to --out. Exit 0 only if every check holds.
"""

from __future__ import annotations

import contextlib
import json
import random
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import click
import redis

from devtools.probes import group_lag, kafka_probe
from runtime.kafka import create_topics
from schemas.redis_state import Keys
from tests.benchmarks.system.loadgen import LoadGen, Sent, inject_bad, load_photos
from tests.benchmarks.system.soak_checks import (
    Origin,
    log_events,
    plot_rss,
    verify_counts,
    verify_dead_letters,
    verify_memory,
)
from tests.benchmarks.system.soak_stack import (
    AGGREGATOR_GROUP,
    DETECTOR_GROUP,
    MAX_FRAME_BYTES,
    PREFIX,
    STAGES,
    STATE,
    Soak,
)
from tests.workers.hostile_inputs import (
    HOSTILE_CAMERA,
    Hostile,
    frame_kinds,
    result_kinds,
)
from tests.workers.test_hostile import Sender


class Attack:
    """The fault cycle: each step breaks something and brings it back, or sends a burst."""

    def __init__(self, soak: Soak, gen: LoadGen, cameras: list[str], copies: int) -> None:
        self.soak, self.gen, self.cameras, self.copies = soak, gen, cameras, copies
        self.sender = Sender(soak.kafka)
        self.bad: list[Sent] = []
        self.bursts = 0
        self._random = random.Random(12)

    def hostile(self) -> None:
        now = datetime.now(UTC)
        kinds: list[Hostile] = frame_kinds(now) + result_kinds(now)
        items = [(kind, copy) for kind in kinds for copy in range(self.copies)]
        self._random.shuffle(items)
        for kind, copy in items:
            self.sender.hostile(kind, copy)
        self.bad += inject_bad(
            self.gen,
            self.gen.photos[0],
            self.cameras[0],
            self.soak.kafka.results_topic,
            MAX_FRAME_BYTES,
        )
        self.sender.flush()
        self.bursts += 1
        self.soak.log(f"fault: hostile burst {self.bursts} ({len(items) + 5} records)")

    def kill_detector(self) -> None:
        self.soak.kill9("detector-0")

    def kill_aggregator(self) -> None:
        self.soak.kill9("aggregator-0")

    def broker(self) -> None:
        self.soak.log("fault: restarting the Kafka broker")
        self.soak.stop_service("kafka")
        self.soak.stack("up", "--no-model-server")
        self.soak.log("fault: Kafka back (healthy)")

    def model_server(self) -> None:
        self.soak.stop_service("model-server")
        self.soak.log("fault: model server stopped for 30 s")
        time.sleep(30)
        self.soak.serve_up()
        self.soak.log("fault: model server back (healthy)")

    def redis(self) -> None:
        with contextlib.suppress(redis.ConnectionError):
            redis.Redis(port=self.soak.redis_port).shutdown(save=True)
        self.soak.log("fault: Redis stopped (SHUTDOWN SAVE) for 10 s")
        time.sleep(10)
        self.soak.stack("up", "--no-model-server")
        self.soak.log("fault: Redis back from its snapshot")

    def cycle(self) -> list[Callable[[], None]]:
        h = self.hostile
        return [
            *(h, self.kill_detector, h, self.broker, h, self.model_server),
            *(h, self.redis, h, self.kill_aggregator),
        ]

    def run(self, until: Callable[[], bool], gap_s: float, once: bool) -> None:
        """Run the cycle (once, or again and again) until `until()`; a step that fails is
        logged and counted as a failed check, and the cycle goes on."""
        while not until():
            for step in self.cycle():
                if until() and not once:
                    return
                try:
                    step()
                    self.soak.faults[step.__name__] += 1
                except Exception as error:  # the soak reports it; the run goes on
                    self.soak.fault_errors.append(f"{step.__name__}: {error!r}")
                    self.soak.log(f"fault step {step.__name__} FAILED: {error!r}")
                time.sleep(gap_s)
            if once:
                return

    def expected(self) -> dict[Origin, str]:
        """Where every hostile record landed and the reason it must be dead-lettered with."""
        self.sender.flush()
        out = dict(self.sender.expected)
        for sent in self.bad:
            meta = sent.future.get(timeout=0)
            out[(meta.topic, meta.partition, meta.offset)] = sent.kind
        return out


def progress(soak: Soak, gen: LoadGen, attack: Attack, cameras: list[str]) -> None:
    """A line a minute (and the RSS checkpoint): a run cut short is still evidence."""
    keys = Keys(PREFIX)
    client = redis.Redis(port=soak.redis_port, socket_timeout=5)
    while not soak._stop.wait(60.0):
        counted: int | str = "redis down"
        with contextlib.suppress(redis.RedisError):
            counted = sum(int(client.hget(keys.camera_totals(c), "frames") or 0) for c in cameras)
        rss = " ".join(
            f"{name}={trace[-1][1]:.0f}"
            for name, trace in sorted(soak.rss.items())
            if trace[-1][0] > soak.elapsed_s() - 10
        )
        valid = sum(1 for s in gen.sent if s.kind == "valid")
        soak.log(
            f"progress: valid sent {valid}, counted {counted}, hostile sent "
            f"{len(attack.sender.expected) + len(attack.bad)}, faults {sum(soak.faults.values())}, "
            f"failed steps {len(soak.fault_errors)}, unexpected exits "
            f"{len(soak.unexpected_exits)}; RSS MiB {rss}"
        )
        (STATE / "rss.json").write_text(json.dumps(soak.rss))


def drain(soak: Soak, timeout_s: float) -> tuple[int, int]:
    deadline = time.monotonic() + timeout_s
    with kafka_probe(soak.kafka) as (admin, consumer):
        while True:
            lags = (
                group_lag(admin, consumer, DETECTOR_GROUP, soak.kafka.frames_topic),
                group_lag(admin, consumer, AGGREGATOR_GROUP, soak.kafka.results_topic),
            )
            if lags == (0, 0) or time.monotonic() > deadline:
                return lags
            time.sleep(2)


@click.command()
@click.option("--duration", default=0.0, help="Seconds to stream, faults cycling (0: --frames).")
@click.option(
    "--frames", default=300, show_default=True, help="Without --duration: frames to send."
)
@click.option("--rate", default=2.0, show_default=True, help="Frames per second, all cameras.")
@click.option("--cameras", "camera_count", default=6, show_default=True)
@click.option("--gap", "gap_s", default=20.0, show_default=True, help="Seconds between steps.")
@click.option("--copies", default=2, show_default=True, help="Copies of each kind per burst.")
@click.option("--drain-timeout", default=300.0, show_default=True)
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Report folder.")
def main(
    duration: float,
    frames: int,
    rate: float,
    camera_count: int,
    gap_s: float,
    copies: int,
    drain_timeout: float,
    out: Path | None,
) -> None:
    cameras = [f"soak-cam-{i}" for i in range(camera_count)]
    soak = Soak(cameras)
    amount = f"{duration:.0f} s" if duration else f"{frames} frames"
    click.echo(
        f"soak: private stack under {STATE} (Kafka {soak.kafka.bootstrap_servers}, Redis "
        f":{soak.redis_port}); {amount} at {rate}/s over {camera_count} cameras, steps "
        f"{gap_s:g} s apart, {copies} copies of each hostile kind per burst"
    )
    soak.stack("down", "--wipe")
    soak.stack("up", "--no-model-server")
    soak.serve_up()
    create_topics(soak.kafka)
    soak.log("private stack up")
    gen = LoadGen(soak.kafka, cameras, load_photos(16))
    attack = Attack(soak, gen, cameras, copies)
    try:
        for name in STAGES:
            soak.start(name)
        soak.background(soak.supervise)
        soak.background(soak.sample_rss)
        soak.background(lambda: progress(soak, gen, attack, cameras))
        done = threading.Event()

        def stream() -> None:
            sent = gen.stream(
                rate_fps=rate, frames=None if duration else frames, seconds=duration or None
            )
            soak.log(f"load generator: done, {sent} frames sent")
            done.set()

        soak.background(stream)
        soak.log("streaming")
        attack.run(done.is_set, gap_s, once=not duration)
        done.wait()
        valid, failed = gen.acknowledged("valid")
        expected = attack.expected()
        soak.log(f"{len(valid)} valid frames acknowledged by Kafka, {len(failed)} not")
        lags = drain(soak, drain_timeout)
        soak.log(f"drained: detector lag {lags[0]}, aggregator lag {lags[1]}")
        time.sleep(3)
        client = redis.Redis(port=soak.redis_port, decode_responses=True)
        counts_ok, count_lines = verify_counts(client, PREFIX, valid, [HOSTILE_CAMERA, "intruder"])
        dl_ok, dl_lines = verify_dead_letters(soak.kafka, expected)
    finally:
        soak.stop()
    mem_ok, mem_lines = verify_memory(soak.rss)
    soak.stack("down")
    report = [
        "== events",
        *soak.events,
        f"\n== faults ({sum(soak.faults.values())} steps; failed steps: {len(soak.fault_errors)})",
        *[f"{n:>5}  {name}" for name, n in sorted(soak.faults.items())],
        *soak.fault_errors,
        f"\n== exactly once: {len(valid)} valid frames sent and acknowledged, {len(failed)} not",
        *count_lines,
        f"\n== dead letters ({len(expected)} hostile records sent)",
        *dl_lines,
        "\n== recovery events in the stage logs",
        *log_events(STATE / "logs"),
        "\n== memory (RSS sampled every 5 s; name:pid, a restart is a new pid)",
        *mem_lines,
        f"\nunexpected stage exits (restarted by the supervisor): {len(soak.unexpected_exits)}",
        *soak.unexpected_exits,
    ]
    passed = counts_ok and dl_ok and mem_ok and not failed and not soak.fault_errors
    passed &= not soak.unexpected_exits
    report.append(
        f"\nsoak: counts {'PASS' if counts_ok else 'FAIL'}, dead letters "
        f"{'PASS' if dl_ok else 'FAIL'}, memory {'PASS' if mem_ok else 'FAIL'}, exits "
        f"{'PASS' if not soak.unexpected_exits else 'FAIL'}, fault steps "
        f"{'PASS' if not soak.fault_errors else 'FAIL'}"
    )
    click.echo("\n".join(report))
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "report.txt").write_text("\n".join(report) + "\n")
        (out / "rss.json").write_text(json.dumps(soak.rss))
        plot_rss(soak.rss, out / "rss.png")
    raise SystemExit(0 if passed else 1)


if __name__ == "__main__":
    main()
