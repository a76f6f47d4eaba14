"""The soak's verdicts: read back what the pipeline did and compare it with what was sent.

Every check returns (passed, report lines), so the soak prints one table per check and
exits non-zero if any failed. Ground truth is what Kafka acknowledged to the load generator
(valid frames) and to the hostile sender (each hostile record's topic/partition/offset and
the dead-letter reason it must end with).
"""

from __future__ import annotations

import contextlib
import json
from collections import Counter
from pathlib import Path
from typing import Any

import redis
from kafka import KafkaConsumer, TopicPartition

from runtime.kafka import KafkaSettings
from schemas.common import decode
from schemas.dead_letter import SUPPORTED_DEAD_LETTER_VERSIONS, DeadLetter
from schemas.redis_state import Keys, counters_of, dedupe_slot
from tests.benchmarks.system.loadgen import Sent

Origin = tuple[str, int, int]
"""A record's (topic, partition, offset)."""
RssTrace = dict[str, list[tuple[float, float]]]
"""process name:pid → [(seconds since start, RSS MiB)]."""


def read_topic(kafka: KafkaSettings, topic: str) -> list[Any]:
    """Every record of `topic`, from offset 0 to its current end."""
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


def verify_counts(
    client: redis.Redis, prefix: str, valid: list[Sent], never_counted: list[str]
) -> tuple[bool, list[str]]:
    """Per camera: lifetime frames == frames acknowledged, one dedupe entry per (camera,
    seq) and no other; cameras of hostile records have no counters at all."""
    keys = Keys(prefix)
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
    for camera in never_counted:
        held = client.hgetall(keys.camera_totals(camera))
        ok &= not held
        lines.append(f"{camera:<12} (hostile only) counters: {held or 'none'}")
    return ok, lines


def verify_dead_letters(
    kafka: KafkaSettings, expected: dict[Origin, str]
) -> tuple[bool, list[str]]:
    """Every expected record dead-lettered with its reason; no dead letter of anything else.
    A record dead-lettered twice (re-read after a kill -9 before its commit) is reported,
    not failed: dead letters are at-least-once."""
    letters = [
        decode(DeadLetter, r.value, SUPPORTED_DEAD_LETTER_VERSIONS)
        for r in read_topic(kafka, kafka.dead_letter_topic)
    ]
    copies = Counter((d.source_topic, d.partition, d.offset) for d in letters)
    got = {(d.source_topic, d.partition, d.offset): d.reason.value for d in letters}
    wanted = Counter(expected.values())
    right = Counter(r for o, r in expected.items() if got.get(o) == r)
    wrong = {o: (r, got.get(o)) for o, r in expected.items() if got.get(o) != r}
    extra = {o: r for o, r in got.items() if o not in expected}
    lines = [f"{'reason':<28} {'expected':>8} {'got right':>9}"]
    lines += [f"{r:<28} {n:>8} {right[r]:>9}" for r, n in sorted(wanted.items())]
    lines.append(
        f"{'total':<28} {len(expected):>8} {sum(right.values()):>9}; dead letters read "
        f"{len(letters)}, of {len(got)} distinct records "
        f"({sum(n - 1 for n in copies.values())} dead-lettered again after a kill -9)"
    )
    lines += [f"MISSING/WRONG {o}: expected {r}, got {g}" for o, (r, g) in list(wrong.items())[:20]]
    lines += [f"UNEXPECTED dead letter {o}: {r}" for o, r in list(extra.items())[:20]]
    return not wrong and not extra, lines


RECOVERY_EVENTS = {
    "partition_rewound",
    "kafka_unavailable",
    "redis_unavailable",
    "model_server_unavailable",
    "commit_failed",
    "dead_letter",
    "corrupt_record",
}


def log_events(logs: Path) -> list[str]:
    """What the stages logged about recovering: batched frames discarded at a revoke,
    partitions rewound to re-read them, outages waited out, dead letters sent."""
    counts: Counter[str] = Counter()
    for path in logs.glob("*.log"):
        for line in path.read_text(errors="replace").splitlines():
            if not line.startswith("{"):
                continue
            with contextlib.suppress(ValueError, KeyError, TypeError):
                event = json.loads(line)
                role = path.stem.split("-")[0]
                if event.get("event") == "partitions_revoked":
                    counts[f"{role}: frames discarded at a revoke"] += event["dropped_frames"]
                elif event.get("event") in RECOVERY_EVENTS:
                    counts[f"{role}: {event.get('event')}"] += 1
    return [f"{n:>6}  {name}" for name, n in sorted(counts.items())]


def verify_memory(rss: RssTrace, min_lived_s: float = 600.0) -> tuple[bool, list[str]]:
    """Per process (name:pid): RSS first, max, last. 'Grew without bound' is judged on
    processes that lived ≥ `min_lived_s`: flagged if RSS over the last third still exceeds
    the first third's by more than 25 % + 50 MiB (a steady climb, not a warm-up step).
    Shorter lives are shown, not judged: a restarted detector spends its first minutes
    loading its model and taking its first frames (the 30-minute soak's first report, with
    60 s, flagged exactly that in a detector that lived 266 s)."""
    lines = [f"{'process':<28} {'lived s':>7} {'first MB':>8} {'max MB':>7} {'last MB':>7}"]
    ok = True
    for name, trace in sorted(rss.items()):
        lived = trace[-1][0] - trace[0][0]
        values = [v for _, v in trace]
        flag = ""
        if lived >= min_lived_s and len(values) >= 6:
            third = len(values) // 3
            early, late = max(values[:third]), min(values[-third:])
            if late > early * 1.25 + 50:
                flag, ok = "  GROWING", False
        lines.append(
            f"{name:<28} {lived:>7.0f} {values[0]:>8.0f} {max(values):>7.0f} "
            f"{values[-1]:>7.0f}{flag}"
        )
    return ok, lines


def plot_rss(rss: RssTrace, path: Path) -> None:
    """RSS over time, one line per process (a restart is a new line), for docs/."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    figure, axis = plt.subplots(figsize=(11, 5))
    colours: dict[str, Any] = {}
    for name, trace in sorted(rss.items()):
        role = name.split(":")[0]
        line = axis.plot(
            [t / 60 for t, _ in trace],
            [v for _, v in trace],
            color=colours.get(role),
            label=None if role in colours else role,
            linewidth=1,
        )
        colours.setdefault(role, line[0].get_color())
    axis.set_xlabel("minutes since start")
    axis.set_ylabel("RSS (MiB)")
    axis.set_yscale("log")
    axis.set_title("Soak: RSS of every process (a restart starts a new line)")
    axis.legend(loc="upper left", fontsize=8, ncol=4)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
