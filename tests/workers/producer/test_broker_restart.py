"""A producer across a restart of its Kafka broker, on the session's private stack.

The broker is stopped under a producer replaying a folder at 10 fps and brought back. The
producer must report not delivering (its /readyz) while the broker is gone, keep running,
deliver again afterwards, and account for every frame exactly: what the topic holds is
what it counted as sent, each once, in strictly increasing sequence; every other frame it
encoded is counted as dropped.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from schemas.frame import parse_frame_headers
from tests.private_stack import PrivateStack
from tests.recovery import wait_for
from tests.workers.producer.conftest import RunProducer, read_frames
from workers.producer.config import CameraConfig
from workers.producer.main import STALL_S

pytestmark = pytest.mark.integration


def test_broker_restart_under_a_running_producer_loses_and_doubles_nothing(
    private_stack: PrivateStack, run_producer: RunProducer, tmp_path: Path
) -> None:
    kafka = private_stack.topics("prod-restart")
    for i in range(3):
        cv2.imwrite(str(tmp_path / f"img{i}.jpg"), np.full((120, 160, 3), 40 * i, np.uint8))
    camera = CameraConfig(id="cam-r", source=f"folder:{tmp_path}", fps=10)
    producer, metrics = run_producer([camera], kafka, buffer_frames=20)

    def sent() -> float:
        return metrics.total("frames_sent", "cam-r")

    wait_for(lambda: sent() >= 10, 60, "frames delivered before the restart")
    private_stack.stop_kafka()
    wait_for(lambda: not producer.sender.delivering(STALL_S), STALL_S + 30, "not delivering")
    sent_during = sent()
    wait_for(lambda: metrics.total("frames_dropped", "cam-r") > 0, 30, "the oldest dropped")

    private_stack.start_kafka()
    wait_for(lambda: producer.sender.delivering(STALL_S), 120, "delivering again")
    wait_for(lambda: sent() >= sent_during + 10, 120, "frames delivered after the restart")
    producer.stop()

    records = read_frames(kafka, kafka.frames_topic)
    seqs = [parse_frame_headers(r.headers).seq for r in records]
    assert len(records) == sent()  # each frame counted as sent is in the topic, once
    assert seqs == sorted(set(seqs)), "sequence numbers repeat or go back"
    encoded, dropped = (
        metrics.total("frames_encoded", "cam-r"),
        metrics.total("frames_dropped", "cam-r"),
    )
    assert encoded == sent() + dropped
