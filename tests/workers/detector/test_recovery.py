"""Exact recovery of detector workers after `kill -9`, with one and with two in the group.

The victim is frozen (SIGSTOP) at a moment where results it published for frames are in the
results topic while the broker has not committed those frames' offsets, then killed with
SIGKILL. The committed offsets at that moment say exactly what the group re-reads: every
frame of the victim's partitions from there on. The survivor must answer exactly those (and,
with two workers, its own partitions' frames) once each; the duplicates in the results topic
must be exactly the re-read frames the victim had answered; distinct results = frames sent.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from runtime.kafka import KafkaSettings, make_producer
from schemas.common import decode
from schemas.frame import FrameMeta, frame_headers
from schemas.result import SUPPORTED_RESULT_VERSIONS, FrameResult
from tests.recovery import (
    Place,
    committed_offsets,
    end_offsets,
    freeze_holding,
    kill_9,
    read_to_end,
    stable_assignment,
)
from tests.workers.detector.test_integration import (  # noqa: F401 (fixtures)
    STARTUP_S,
    OwnModelServer,
    Topic,
    Worker,
    own_model_server,
    photos_with_faces,
    results_of,
    tiny_model_base,
    wait_until,
    workers,
)

pytestmark = pytest.mark.integration
PARTITIONS = 3
Key = tuple[str, int]


def send_placed(
    kafka: KafkaSettings, photos: list[Path], count: int, first_seq: int = 0
) -> dict[Key, Place]:
    """`count` frames spread evenly over the partitions; where each (camera, seq) landed."""
    producer = make_producer(kafka, "test-frames")
    futures = {}
    for seq in range(first_seq, first_seq + count):
        photo = photos[seq % len(photos)]
        height, width = np.asarray(cv2.imread(str(photo))).shape[:2]
        camera = f"cam-{seq % PARTITIONS}"
        meta = FrameMeta(
            camera_id=camera, seq=seq, captured_at=datetime.now(UTC), width=width, height=height
        )
        futures[(camera, seq)] = producer.send(
            kafka.frames_topic,
            key=camera.encode(),
            value=photo.read_bytes(),
            headers=frame_headers(meta),
            partition=seq % PARTITIONS,
        )
    producer.flush(timeout=30)
    places = {
        k: Place(m.partition, m.offset) for k, m in ((k, f.get(30)) for k, f in futures.items())
    }
    producer.close(timeout=10)
    return places


def all_results(kafka: KafkaSettings) -> list[FrameResult]:
    """Every result in the topic, read up to its end offsets."""
    values = read_to_end(kafka, kafka.results_topic, PARTITIONS)
    return [decode(FrameResult, v, SUPPORTED_RESULT_VERSIONS) for v in values]


# Both heavy: in CI rehearsals the freeze loop at times never caught the victim holding work
# within 240 s (one worker: once in three rehearsals), though each passes alone; see README.
@pytest.mark.heavy
@pytest.mark.parametrize("members", [1, 2])
def test_kill_9_replays_exactly_from_the_committed_offsets(
    members: int,
    kafka_settings: KafkaSettings,
    workers: Callable[[str, str], Worker],  # noqa: F811
    own_model_server: OwnModelServer,  # noqa: F811
    shared_dir: Path,
    unique_name: str,
) -> None:
    target, group = f"127.0.0.1:{own_model_server.port}", f"detector-{unique_name}"
    victim = workers("victim", target)
    peer = workers("peer", target) if members == 2 else None
    live = [w for w in (victim, peer) if w is not None]
    wait_until(lambda: all(w.ready() for w in live), "workers ready", STARTUP_S)
    names = ["victim"] + (["peer"] if peer else [])
    owned = stable_assignment(kafka_settings, group, names, STARTUP_S)["victim"]
    places = send_placed(kafka_settings, photos_with_faces(shared_dir, 6), 30)
    mine = {k for k, place in places.items() if place.partition in owned}
    topic = kafka_settings.frames_topic
    results = Topic(kafka_settings, kafka_settings.results_topic, PARTITIONS)
    at_kill: dict[str, Any] = {}

    def holding() -> bool:
        committed = committed_offsets(kafka_settings, group, topic)
        answered = {(r.camera_id, r.seq) for r in results_of(results) if r.worker_id == "victim"}
        past = {k for k in mine if places[k].offset >= committed.get(places[k].partition, 0)}
        at_kill.update(committed=committed, past=past)
        return bool(answered & past)

    freeze_holding(victim.process, holding, timeout_s=STARTUP_S)
    kill_9(victim.process)
    results.close()
    committed, past = at_kill["committed"], at_kill["past"]
    now_committed = committed_offsets(kafka_settings, group, topic)
    assert {p: now_committed.get(p) for p in owned} == {p: committed.get(p) for p in owned}

    survivor = peer or workers("survivor", target)
    ends = end_offsets(kafka_settings, topic, PARTITIONS)
    wait_until(
        lambda: committed_offsets(kafka_settings, group, topic) == ends,
        "the survivor to commit every partition",
        STARTUP_S,
    )
    final = all_results(kafka_settings)
    by_victim = [(r.camera_id, r.seq) for r in final if r.worker_id == "victim"]
    by_survivor = [(r.camera_id, r.seq) for r in final if r.worker_id != "victim"]
    held = set(by_victim) & past
    assert held, "the kill must land while the victim holds answered, uncommitted frames"
    assert set(by_victim) >= mine - past, "an offset was committed before its frame's result"
    assert set(by_victim) <= mine
    assert len(by_survivor) == len(set(by_survivor)), "the survivor answered a frame twice"
    assert set(by_survivor) == past | (set(places) - mine)
    assert len(final) - len({(r.camera_id, r.seq) for r in final}) == len(held)
    assert {(r.camera_id, r.seq) for r in final} == set(places)
    assert all(r.status == "processed" for r in final)
    assert survivor.stop() == 0, survivor.tail()


# In the last CI rehearsal the freeze loop never saw 0 < results < 22 within 240 s (passed 4 of
# 4 runs alone, 12-21 s); like the detector broker-restart test's 1-in-5 hang, not yet explained.
@pytest.mark.heavy
def test_sigterm_mid_stream_commits_exactly_what_it_answered(
    kafka_settings: KafkaSettings,
    workers: Callable[[str, str], Worker],  # noqa: F811
    own_model_server: OwnModelServer,  # noqa: F811
    shared_dir: Path,
    unique_name: str,
) -> None:
    """A drain under load: SIGTERM lands (held back by SIGSTOP until then) while the worker
    is mid-stream; it answers the frames it has taken, exits 0, and the broker's committed
    offsets are exactly its answered frames — a successor answers the rest, none twice."""
    target, group = f"127.0.0.1:{own_model_server.port}", f"detector-{unique_name}"
    topic = kafka_settings.frames_topic
    first = workers("first", target)
    wait_until(first.ready, "worker ready", STARTUP_S)
    stable_assignment(kafka_settings, group, ["first"], STARTUP_S)
    places = send_placed(kafka_settings, photos_with_faces(shared_dir, 6), 30)
    results = Topic(kafka_settings, kafka_settings.results_topic, PARTITIONS)
    poll_records = 8  # the worker's default: frames it may still take after the signal

    def mid_stream() -> bool:
        return 0 < len({(r.camera_id, r.seq) for r in results_of(results)}) < 30 - poll_records

    freeze_holding(first.process, mid_stream, timeout_s=STARTUP_S)
    first.process.send_signal(signal.SIGTERM)  # handled once it runs again
    os.kill(first.process.pid, signal.SIGCONT)
    assert first.process.wait(timeout=120) == 0, first.tail()
    results.close()
    committed = committed_offsets(kafka_settings, group, topic)
    answered = [(r.camera_id, r.seq) for r in all_results(kafka_settings)]
    assert len(answered) == len(set(answered))
    assert set(answered) == {
        k for k, p in places.items() if p.offset < committed.get(p.partition, 0)
    }
    assert len(answered) < len(places), "the drain must leave frames for the successor"

    second = workers("second", target)
    ends = end_offsets(kafka_settings, topic, PARTITIONS)
    wait_until(
        lambda: committed_offsets(kafka_settings, group, topic) == ends,
        "the successor to commit every partition",
        STARTUP_S,
    )
    final = [(r.camera_id, r.seq) for r in all_results(kafka_settings)]
    assert sorted(final) == sorted(places), "a frame missing or answered twice"
    assert second.stop() == 0, second.tail()
