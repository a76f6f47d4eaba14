"""Fixtures for the producer's integration tests: a real RTSP server, a test video made from
the crowd photos, an in-process producer, and a reader of the frames topic."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from prometheus_client import CollectorRegistry

from runtime.kafka import KafkaSettings, make_consumer
from tests.conftest import missing
from workers.producer.config import CameraConfig
from workers.producer.health import HealthSink
from workers.producer.main import Producer, ProducerSettings
from workers.producer.metrics import ProducerMetrics
from workers.producer.sources import configure_ffmpeg

HERE = Path(__file__).resolve().parent
SYSTEM_PYTHON = "/usr/bin/python3"


@pytest.fixture(scope="session")
def crowd_images(shared_dir: Path) -> Path:
    path = shared_dir / "data" / "crowd" / "images"
    if not any(path.glob("*.jpg")):
        missing(f"no crowd images in {path}")
    return path


@pytest.fixture(scope="session")
def test_video(crowd_images: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 640x360, 10 fps H.264 MP4 (one crowd photo per second, ~80 s) made with ffmpeg."""
    if shutil.which("ffmpeg") is None:
        missing("ffmpeg is not installed (apt-get install ffmpeg)")
    video = tmp_path_factory.mktemp("rtsp") / "crowd.mp4"
    subprocess.run(
        [
            "ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
            "-framerate", "1", "-pattern_type", "glob",
            "-i", str(crowd_images / "maksssksksss1*.jpg"),
            "-vf", "scale=640:360:force_original_aspect_ratio=decrease,"
            "pad=640:360:(ow-iw)/2:(oh-ih)/2,setsar=1,format=yuv420p",
            "-r", "10", "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency",
            "-g", "10", "-bf", "0", str(video),
        ],
        check=True,
        timeout=120,
    )  # fmt: skip
    return video


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RtspServer:
    """The GStreamer RTSP server of `rtsp_server.py` as a process that tests kill and restart."""

    def __init__(self, video: Path, login: tuple[str, str] | None = None) -> None:
        """`login`: (user, password) every client must give (RTSP basic auth)."""
        self.video, self.port, self.login = video, free_port(), login
        self.url = f"rtsp://127.0.0.1:{self.port}/cam"
        self._process: subprocess.Popen[str] | None = None

    def start(self) -> None:
        args = [SYSTEM_PYTHON, str(HERE / "rtsp_server.py"), str(self.port), str(self.video)]
        env = dict(os.environ)
        if self.login is not None:
            args.append(self.login[0])
            env["RTSP_PASSWORD"] = self.login[1]
        self._process = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
        )
        assert self._process.stdout is not None
        line = self._process.stdout.readline().strip()
        if line != "ready":
            self.kill()
            raise RuntimeError(f"RTSP server did not start: {line!r}")

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def kill(self) -> None:
        """SIGKILL: the camera vanishes without a goodbye, like a power cut."""
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGKILL)
            self._process.wait(10)
        self._process = None


def _require_gst_rtsp_server() -> None:
    probe = subprocess.run(
        [SYSTEM_PYTHON, "-c", "import gi; gi.require_version('GstRtspServer', '1.0')"],
        capture_output=True,
        check=False,
    )
    if probe.returncode != 0:
        missing(
            "GStreamer RTSP server missing: apt-get install gir1.2-gst-rtsp-server-1.0 python3-gi"
        )


@pytest.fixture
def rtsp_server(test_video: Path) -> Iterator[RtspServer]:
    _require_gst_rtsp_server()
    server = RtspServer(test_video)
    server.start()
    yield server
    server.kill()


RTSP_LOGIN = ("viewer", "Cam07-s3cret-pw")
"""The login of `rtsp_server_with_login` (a test credential, asserted absent from logs)."""


@pytest.fixture
def rtsp_server_with_login(test_video: Path) -> Iterator[RtspServer]:
    """An RTSP server that only serves `RTSP_LOGIN`."""
    _require_gst_rtsp_server()
    server = RtspServer(test_video, RTSP_LOGIN)
    server.start()
    yield server
    server.kill()


RunProducer = Callable[..., tuple[Producer, ProducerMetrics]]


@pytest.fixture
def run_producer() -> Iterator[RunProducer]:
    """Start an in-process producer (fast reconnects for tests); stopped after the test."""
    started: list[Producer] = []
    configure_ffmpeg()

    def start(
        cameras: list[CameraConfig],
        kafka: KafkaSettings,
        health_sink: HealthSink | None = None,
        **overrides: object,
    ) -> tuple[Producer, ProducerMetrics]:
        values: dict[str, object] = {
            "open_timeout_s": 8.0, "read_timeout_s": 3.0, "backoff_initial_s": 0.5,
            "backoff_max_s": 2.0, "shutdown_timeout_s": 10.0, **overrides,
        }  # fmt: skip
        metrics = ProducerMetrics(CollectorRegistry())
        settings = ProducerSettings(**values)  # type: ignore[arg-type]
        producer = Producer(cameras, settings, kafka, metrics, health_sink=health_sink)
        producer.start()
        started.append(producer)
        return producer, metrics

    yield start
    for producer in started:
        if not producer.stop_event.is_set():
            producer.stop()


def read_frames(kafka: KafkaSettings, topic: str, timeout_s: float = 10.0) -> list[ConsumerRecord]:
    """Every record of `topic` written so far (reads until the end offsets are reached)."""
    consumer: KafkaConsumer = make_consumer(
        kafka, f"test-reader-{os.getpid()}-{time.monotonic_ns()}", "test-reader"
    )
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        consumer.assign(partitions)
        consumer.seek_to_beginning()
        end = consumer.end_offsets(partitions)
        records: list[ConsumerRecord] = []
        deadline = time.monotonic() + timeout_s
        while any(consumer.position(tp) < end[tp] for tp in partitions):
            if time.monotonic() > deadline:
                raise AssertionError("could not read the topic to its end in time")
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
        return records
    finally:
        consumer.close()


def wait_until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(0.2)
