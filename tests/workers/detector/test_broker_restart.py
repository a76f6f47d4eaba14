"""A detector worker across a restart of its Kafka broker, on the session's private stack.

The broker is stopped under a running detector that has answered and committed a first
batch of frames, and brought back: the worker reports not ready while the broker is gone
(kafka-python's poll does not raise, so only the worker's own broker probe can tell), stays
up, turns ready again, answers a second batch, and in the end every frame sent has exactly
one result and every frames partition is committed to its end.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from runtime.kafka import KafkaSettings
from tests.private_stack import PrivateStack
from tests.recovery import committed_to_end, http_status, wait_for
from tests.workers.detector.test_integration import (  # noqa: F401 (fixtures)
    STARTUP_S,
    OwnModelServer,
    Worker,
    own_model_server,
    photos_with_faces,
    tiny_model_base,
)
from tests.workers.detector.test_recovery import PARTITIONS, all_results, send_placed

pytestmark = [
    pytest.mark.integration,
    # 1 of 5 runs here: a rebalance that starts as the broker goes away leaves the worker's
    # process silent (no log line from the Kafka client either) until the test gives up
    # waiting for the 503; it looks like a hang inside kafka-python 3's rejoin (the revoke
    # listener had returned). Out of the default run until that is understood.
    pytest.mark.heavy,
]
FRAMES_PER_HALF = 12


@pytest.fixture
def detector(
    private_stack: PrivateStack,
    own_model_server: OwnModelServer,  # noqa: F811
    shared_dir: Path,
    tmp_path: Path,
) -> Iterator[tuple[KafkaSettings, Worker]]:
    """A detector on fresh topics of the private stack, and those topics."""
    kafka = private_stack.topics("det-restart", PARTITIONS)
    target = f"127.0.0.1:{own_model_server.port}"
    started = Worker(kafka, f"detector-{kafka.frames_topic}", target, "w", shared_dir, tmp_path)
    yield kafka, started
    started.stop()


def test_broker_restart_under_a_running_detector_loses_and_doubles_nothing(
    private_stack: PrivateStack, detector: tuple[KafkaSettings, Worker], shared_dir: Path
) -> None:
    kafka, worker = detector
    topic, group = kafka.frames_topic, worker.group
    photos = photos_with_faces(shared_dir, 4)

    def all_committed() -> bool:
        return committed_to_end(kafka, group, topic, PARTITIONS)

    wait_for(worker.ready, STARTUP_S, "the worker to be ready")
    first = send_placed(kafka, photos, FRAMES_PER_HALF)
    wait_for(all_committed, STARTUP_S, "the first half answered and committed")

    private_stack.stop_kafka()
    wait_for(lambda: http_status(worker.health_port, "/readyz") == 503, 30, "not ready, no broker")
    assert worker.process.poll() is None, worker.tail()
    assert http_status(worker.health_port, "/healthz") == 200  # alive, waiting

    private_stack.start_kafka()
    wait_for(worker.ready, 120, "ready again")
    second = send_placed(kafka, photos, FRAMES_PER_HALF, first_seq=FRAMES_PER_HALF)
    wait_for(all_committed, 120, "the second half answered and committed")

    answered = [(r.camera_id, r.seq) for r in all_results(kafka)]
    assert sorted(answered) == sorted({**first, **second})  # each frame once, none missing
    assert worker.stop() == 0, worker.tail()
