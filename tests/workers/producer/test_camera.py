"""The camera loop: reconnects with backoff, isolation, strictly increasing sequence numbers."""

from __future__ import annotations

import itertools
import threading
import time

from structlog.testing import capture_logs

from runtime.backoff import BackoffPolicy
from tests.workers.producer.fakes import ScriptedSource, new_metrics, value
from workers.producer.camera import CameraWorker
from workers.producer.config import CameraConfig
from workers.producer.metrics import ProducerMetrics
from workers.producer.sender import OutgoingFrame

FAST = BackoffPolicy(initial_s=0.01, max_s=0.05, jitter=0.5)


def tick() -> None:
    time.sleep(0.02)  # 50 fps source against a 60 fps target: every frame is kept


def worker(
    sources: list[ScriptedSource],
    metrics: ProducerMetrics,
    sent: list[OutgoingFrame],
    stop: threading.Event,
    camera_id: str = "cam-1",
) -> CameraWorker:
    opened = iter(sources)
    camera = CameraConfig(id=camera_id, source="rtsp://camera/stream", fps=60)
    return CameraWorker(camera, lambda: next(opened), sent.append, metrics, 10**6, FAST, stop)


def test_reconnects_and_keeps_sequence_increasing() -> None:
    metrics, stop = new_metrics(), threading.Event()
    sent: list[OutgoingFrame] = []
    sources = [
        ScriptedSource("ffxfE", fail_opens=0, on_grab=tick),  # 3 good, 1 corrupt, then fails
        ScriptedSource("", fail_opens=1),  # refused once
        ScriptedSource("fff.", on_grab=tick),  # comes back, then ends
    ]
    cam = worker(sources, metrics, sent, stop)
    cam.thread.start()
    cam.thread.join(5)
    assert not cam.thread.is_alive()  # a source that ended for good ends its camera
    seqs = [f.seq for f in sent]
    assert len(seqs) == 6 and all(b > a for a, b in itertools.pairwise(seqs))
    assert all(f.camera_id == "cam-1" and (f.width, f.height) == (64, 48) for f in sent)
    assert value(metrics, "reconnects_total", camera="cam-1") == 2
    assert value(metrics, "frames_dropped_total", camera="cam-1", reason="decode_failed") == 1
    assert value(metrics, "frames_read_total", camera="cam-1") == 7
    assert all(s.closes == s.opens for s in sources)  # every opened source was closed


def test_unexpected_error_is_contained_and_retried() -> None:
    metrics, stop = new_metrics(), threading.Event()
    sent: list[OutgoingFrame] = []

    def explode() -> None:
        raise RuntimeError("bug in a decoder")

    sources = [ScriptedSource("f", on_grab=explode), ScriptedSource("ff.", on_grab=tick)]
    cam = worker(sources, metrics, sent, stop)
    cam.thread.start()
    cam.thread.join(5)
    assert len(sent) == 2
    assert value(metrics, "reconnects_total", camera="cam-1") == 1


def test_a_dead_camera_does_not_affect_a_live_one() -> None:
    metrics, stop = new_metrics(), threading.Event()
    dead_sent: list[OutgoingFrame] = []
    live_sent: list[OutgoingFrame] = []
    dead = worker(
        [ScriptedSource("", fail_opens=10**6) for _ in range(1000)],
        metrics,
        dead_sent,
        stop,
        "dead",
    )
    live = worker([ScriptedSource("f" * 20 + ".", on_grab=tick)], metrics, live_sent, stop, "live")
    dead.thread.start()
    live.thread.start()
    live.thread.join(5)
    stop.set()
    dead.thread.join(5)
    assert len(live_sent) == 20 and not dead_sent
    assert value(metrics, "reconnects_total", camera="dead") >= 3
    assert not dead.thread.is_alive()  # stop interrupts the backoff wait


def test_stop_ends_a_camera_promptly() -> None:
    metrics, stop = new_metrics(), threading.Event()
    sent: list[OutgoingFrame] = []
    cam = worker([ScriptedSource("f" * 10_000, on_grab=tick)], metrics, sent, stop)
    cam.thread.start()
    time.sleep(0.2)
    stop.set()
    cam.thread.join(2)
    assert not cam.thread.is_alive() and sent
    assert value(metrics, "camera_connected", camera="cam-1") == 0


def test_a_frame_that_cannot_fit_is_rejected_with_a_logged_reason() -> None:
    metrics, stop = new_metrics(), threading.Event()
    sent: list[OutgoingFrame] = []
    camera = CameraConfig(id="cam-1", source="rtsp://camera/stream", fps=60)
    source = ScriptedSource("fff.", on_grab=tick)
    tiny_limit = 100  # bytes: no 96-pixel JPEG is that small
    cam = CameraWorker(camera, lambda: source, sent.append, metrics, tiny_limit, FAST, stop)
    with capture_logs() as logs:
        cam.run()
    assert not sent
    assert value(metrics, "frames_dropped_total", camera="cam-1", reason="oversized") == 3
    rejected = [e for e in logs if e["event"] == "frame_rejected"]
    assert len(rejected) == 1  # logged once, not once per frame
    assert "exceeds the 100-byte limit" in rejected[0]["reason"]
