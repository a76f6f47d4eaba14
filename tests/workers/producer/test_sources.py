"""Sources against real inputs: image folders, video files (ffmpeg-made), an MJPEG HTTP stream."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.conftest import missing
from tests.workers.producer.conftest import free_port
from workers.producer import sources
from workers.producer.sources import FolderSource, OpenCvSource, SourceError, configure_ffmpeg


def no_wait(seconds: float) -> bool:
    time.sleep(seconds)
    return False


class FakeClock:
    """The sources' clock: time moves only when a source waits, so pacing is measured
    exactly, whatever the load on the machine."""

    def __init__(self) -> None:
        self.now_s = 1000.0

    def monotonic(self) -> float:
        return self.now_s

    def wait(self, seconds: float) -> bool:
        self.now_s += seconds
        return False


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(sources, "time", fake)
    return fake


@pytest.fixture
def images(tmp_path: Path) -> Path:
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(6):
        cv2.imwrite(str(folder / f"img{i}.jpg"), np.full((60, 80, 3), 40 * i, np.uint8))
    (folder / "notes.txt").write_text("not an image")
    return folder


def grab_all(source: FolderSource | OpenCvSource, limit: int) -> list[int]:
    """Mean pixel value of each frame grabbed (until the end or `limit` frames)."""
    values: list[int] = []
    while len(values) < limit and source.grab():
        image = source.retrieve()
        assert image is not None
        values.append(round(float(image.mean()) / 40))
    return values


@pytest.mark.parametrize(
    ("select", "loop", "expected"),
    [
        (slice(None), False, [0, 1, 2, 3, 4, 5]),  # all images, sorted by name, then the end
        (slice(2, 4), False, [2, 3]),  # a slice: another camera shows other images
        (slice(None, None, 2), False, [0, 2, 4]),  # a step
        (slice(4, None), True, [4, 5, 4, 5, 4]),  # looping
    ],
)
def test_folder_selection_and_loop(
    images: Path, select: slice, loop: bool, expected: list[int]
) -> None:
    source = FolderSource(images, "*.jpg", select, fps=1000, loop=loop, wait=no_wait)
    source.open()
    assert grab_all(source, limit=5 if loop else 100) == expected


def test_folder_replays_at_its_fps(images: Path, clock: FakeClock) -> None:
    source = FolderSource(images, "*.jpg", slice(None), fps=20, loop=True, wait=clock.wait)
    source.open()
    started = clock.now_s
    for _ in range(11):
        source.grab()
    assert clock.now_s - started == pytest.approx(0.5)  # 10 intervals of 50 ms


def test_folder_problems_are_source_errors(images: Path, tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no such folder"):
        FolderSource(tmp_path / "nope", "*.jpg", slice(None), 1, True, no_wait).open()
    with pytest.raises(SourceError, match="no images match"):
        FolderSource(images, "*.png", slice(None), 1, True, no_wait).open()
    corrupt = FolderSource(images, "*.txt", slice(None), 1000, False, no_wait)
    corrupt.open()
    assert corrupt.grab() and corrupt.retrieve() is None  # one bad frame, not a dead camera


@pytest.fixture(scope="module")
def short_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2 s of 160x120 test pattern at 10 fps (H.264), made with ffmpeg."""
    if shutil.which("ffmpeg") is None:
        missing("ffmpeg is not installed (apt-get install ffmpeg)")
    video = tmp_path_factory.mktemp("video") / "pattern.mp4"
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-f", "lavfi",
         "-i", "testsrc=size=160x120:rate=10:duration=2", "-c:v", "libx264",
         "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(video)],
        check=True, timeout=60,
    )  # fmt: skip
    return video


def file_source(video: Path | str, realtime: bool, loop: bool) -> OpenCvSource:
    return OpenCvSource(
        str(video), is_file=True, realtime=realtime, loop=loop,
        open_timeout_s=5, read_timeout_s=5, wait=no_wait,
    )  # fmt: skip


def test_file_replays_in_real_time(short_video: Path, clock: FakeClock) -> None:
    source = OpenCvSource(
        str(short_video), is_file=True, realtime=True, loop=False,
        open_timeout_s=5, read_timeout_s=5, wait=clock.wait,
    )  # fmt: skip
    source.open()
    started = clock.now_s
    frames = 0
    while source.grab():
        frames += 1
    source.close()
    assert frames == 20
    # paced by timestamps: first to last frame of 2 s at 10 fps is 1.9 s of waiting
    assert clock.now_s - started == pytest.approx(1.9, abs=1e-3)


def test_file_loops_or_ends(short_video: Path, tmp_path: Path) -> None:
    looping = file_source(short_video, realtime=False, loop=True)
    looping.open()
    assert sum(looping.grab() for _ in range(45)) == 45  # past the 20-frame end, twice
    image = looping.retrieve()
    assert image is not None and image.shape == (120, 160, 3)
    with pytest.raises(SourceError, match="no such file"):
        file_source(tmp_path / "missing.mp4", realtime=False, loop=True).open()


class MjpegStream:
    """A minimal MJPEG-over-HTTP camera (multipart/x-mixed-replace), 10 frames per second."""

    def __init__(self) -> None:
        ok, jpeg = cv2.imencode(".jpg", np.full((96, 128, 3), 90, np.uint8))
        assert ok
        frame = bytes(jpeg)

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                try:
                    while not stream.stopped.is_set():
                        self.wfile.write(
                            b"--frame\r\nContent-Type: image/jpeg\r\n"
                            + f"Content-Length: {len(frame)}\r\n\r\n".encode()
                            + frame
                            + b"\r\n"
                        )
                        time.sleep(0.1)
                except (BrokenPipeError, ConnectionResetError):
                    return

            def log_message(self, format: str, *args: object) -> None:
                return

        stream = self
        self.stopped = threading.Event()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/video.mjpg"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.stopped.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def mjpeg() -> Iterator[MjpegStream]:
    stream = MjpegStream()
    yield stream
    stream.stop()


def network_source(url: str) -> OpenCvSource:
    configure_ffmpeg()
    return OpenCvSource(
        url, is_file=False, realtime=False, loop=False,
        open_timeout_s=5, read_timeout_s=2, wait=no_wait,
    )  # fmt: skip


def test_mjpeg_http_stream_and_its_loss(mjpeg: MjpegStream) -> None:
    source = network_source(mjpeg.url)
    source.open()
    assert all(source.grab() for _ in range(5))
    image = source.retrieve()
    assert image is not None and image.shape == (96, 128, 3)
    mjpeg.stop()  # the camera goes away: the source fails instead of hanging
    started = time.monotonic()
    with pytest.raises(SourceError):
        for _ in range(100):
            source.grab()
    assert time.monotonic() - started < 10
    source.close()


def test_unreachable_rtsp_fails_to_open() -> None:
    with pytest.raises(SourceError, match="cannot open"):
        network_source(f"rtsp://127.0.0.1:{free_port()}/cam").open()
