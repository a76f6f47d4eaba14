"""One end-to-end dead-letter table: a record per reason through the real detector and
aggregator, one row per reason in the dead-letter topic, and the partitions keep moving.

For each (stage, reason) that input alone can cause, the first hostile record of
tests/workers/hostile_inputs.py with that reason is sent (plus an oversized frame, which the
catalogue lacks because the shared suite keeps the default 4 MiB limit; here the detector's
limit is 64 KiB). Then valid frames are sent behind them on every partition. Each row must
name its reason and stage, point at exactly where its record landed (topic, partition,
offset), and carry at most 32 bytes of the payload, which are its first bytes; every valid
frame sent afterwards must be counted, and both groups must commit their topics to the end.

Reasons no record can cause on its own are covered where their cause can be arranged:
`processing_failed` and `classifier_unavailable` in tests/workers/detector/test_worker.py.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis

from runtime.kafka import KafkaSettings
from schemas.common import DeadLetterReason
from schemas.dead_letter import PAYLOAD_HEAD_BYTES
from schemas.redis_state import Keys
from tests.recovery import committed_to_end, wait_for
from tests.workers.hostile_inputs import Hostile, frame_kinds, result_kinds, valid_jpeg
from tests.workers.test_hostile import (
    CAMERAS,
    STARTUP_S,
    Sender,
    Service,
    aggregator_env,
    caught_up,
    dead_letters,
    detector_env,
    small_frames,
)

pytestmark = pytest.mark.integration
MAX_FRAME_BYTES = 64 * 1024
UNREACHABLE_BY_INPUT = {DeadLetterReason.PROCESSING_FAILED, DeadLetterReason.CLASSIFIER_UNAVAILABLE}
FRAMES_AFTER = 6
"""Valid frames per camera sent behind the bad records (4 cameras: every partition)."""


def one_per_reason(now: datetime) -> list[Hostile]:
    """The first catalogue record of each (topic, reason), and an oversized frame."""
    chosen: dict[tuple[str, DeadLetterReason], Hostile] = {}
    for record in frame_kinds(now) + result_kinds(now):
        chosen.setdefault((record.topic, record.reason), record)
    valid_headers = next(h for h in frame_kinds(now) if h.kind == "payload text").headers
    big = valid_jpeg() + bytes(MAX_FRAME_BYTES)
    reason = DeadLetterReason.OVERSIZED_FRAME
    return [*chosen.values(), Hostile("frame over max bytes", "frames", reason, big, valid_headers)]


def test_a_dead_letter_per_reason_and_the_partitions_keep_moving(
    kafka_settings: KafkaSettings,
    redis_client: redis.Redis,
    redis_prefix: str,
    unique_name: str,
    model_server: str,
    shared_dir: Path,
    tmp_path: Path,
) -> None:
    kafka, keys = kafka_settings, Keys(redis_prefix)
    detector_group, aggregator_group = f"det-{unique_name}", f"agg-{unique_name}"
    records = one_per_reason(datetime.now(UTC))
    covered = {r.reason for r in records}
    assert covered | UNREACHABLE_BY_INPUT == set(DeadLetterReason), "a reason has no row"

    services = [
        Service(
            "detector",
            {
                **detector_env(kafka, detector_group, model_server, shared_dir),
                "MASKWATCH_KAFKA_MAX_FRAME_BYTES": str(MAX_FRAME_BYTES),
            },
            tmp_path / "detector.log",
        ),
        Service(
            "aggregator",
            aggregator_env(kafka, redis_prefix, aggregator_group),
            tmp_path / "aggregator.log",
        ),
    ]
    try:
        sender = Sender(kafka)
        for copy, record in enumerate(records):
            sender.hostile(record, copy)
        sender.flush()
        photos = small_frames()
        for seq in range(FRAMES_AFTER):
            for camera in CAMERAS:
                sender.frame(camera, seq, photos[seq % len(photos)])
        sender.close()

        def counted() -> int:
            return sum(
                int(redis_client.hget(keys.camera_totals(c), "frames") or 0) for c in CAMERAS
            )

        def settled() -> bool:
            for service in services:
                assert service.alive(), service.tail()
            return (
                counted() == FRAMES_AFTER * len(CAMERAS)
                and committed_to_end(kafka, detector_group, kafka.frames_topic, 3)
                and caught_up(kafka, aggregator_group)
            )

        wait_for(settled, STARTUP_S, "valid frames counted and both topics committed")
        letters = dead_letters(kafka)
    finally:
        for service in services:
            service.stop()

    sent = sender.placed
    rows = {(d.source_topic, d.partition, d.offset): d for d in letters}
    assert len(rows) == len(letters) == len(records), [d.reason for d in letters]
    assert set(rows) == set(sent)
    for place, letter in sorted(rows.items()):
        record = sent[place]
        stage = "detector" if record.topic == "frames" else "aggregator"
        head = base64.b64decode(letter.payload_head_b64)
        print(f"{letter.reason.value:28} {letter.stage:10} {place} head {len(head)} B")
        assert (letter.reason, letter.stage) == (record.reason, stage), record.kind
        assert len(head) <= PAYLOAD_HEAD_BYTES == 32
        undecodable = record.reason is DeadLetterReason.CORRUPT_RECORD  # no payload kept
        assert head == (b"" if undecodable else (record.value or b"")[:PAYLOAD_HEAD_BYTES])
        assert letter.payload_size == (0 if undecodable else len(record.value or b""))
