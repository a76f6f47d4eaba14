"""Where frames come from: OpenCV/FFmpeg captures and image folders behind `FrameSource`.

The camera loop only sees the protocol, so reconnects, sampling and encoding are the same for
every kind of camera, and unit tests can drive the loop with an in-memory source.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from workers.producer.config import CameraConfig, SourceKind
from workers.producer.sampling import Image

#: Waits up to the given seconds; returns True when the producer is stopping.
Wait = Callable[[float], bool]

#: FFmpeg options for every network capture: RTSP over TCP (UDP loses packets behind NAT and
#: in clusters). Read once by OpenCV per open; set before any camera thread starts.
FFMPEG_CAPTURE_OPTIONS = "rtsp_transport;tcp"


def configure_ffmpeg() -> None:
    """Set OpenCV's FFmpeg capture options unless the operator already did (call once)."""
    os.environ.setdefault("OPENCV_FFMPEG_CAPTURE_OPTIONS", FFMPEG_CAPTURE_OPTIONS)


class SourceError(Exception):
    """The source cannot be opened or stopped delivering (the camera reconnects)."""


class FrameSource(Protocol):
    """A camera as the producer sees it.

    Contract: `open` connects (raises SourceError); `grab` waits for the next frame and says
    whether there is one (False: the source ended for good, e.g. a non-looping file) or raises
    SourceError on failure or read timeout; `retrieve` decodes the grabbed frame to BGR, or
    returns None when that one frame is undecodable (the stream itself is fine). Grabbing
    without retrieving is cheap, which is how frames are skipped. `close` is idempotent.
    """

    def open(self) -> None: ...

    def grab(self) -> bool: ...

    def retrieve(self) -> Image | None: ...

    def close(self) -> None: ...


class OpenCvSource:
    """RTSP, HTTP (MJPEG or files), video files and webcams through OpenCV's FFmpeg backend.

    Open and read timeouts go to FFmpeg's interrupt callback, so a stalled network stream ends
    `grab` with an error instead of hanging the camera thread. Files can replay in real time
    (paced by their presentation timestamps) and loop.
    """

    def __init__(
        self,
        target: str | int,
        *,
        is_file: bool,
        realtime: bool,
        loop: bool,
        open_timeout_s: float,
        read_timeout_s: float,
        wait: Wait,
    ) -> None:
        self._target = target
        self._is_file, self._realtime, self._loop = is_file, realtime, loop
        self._params = [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
            int(open_timeout_s * 1000),
            cv2.CAP_PROP_READ_TIMEOUT_MSEC,
            int(read_timeout_s * 1000),
        ]
        self._wait = wait
        self._cap: cv2.VideoCapture | None = None
        self._origin: float | None = None

    def open(self) -> None:
        if self._is_file and not Path(str(self._target)).is_file():
            raise SourceError(f"no such file: {self._target}")
        api = cv2.CAP_ANY if isinstance(self._target, int) else cv2.CAP_FFMPEG
        cap = cv2.VideoCapture(self._target, api, self._params)
        if not cap.isOpened():
            cap.release()
            raise SourceError("cannot open the stream (unreachable, refused or unsupported)")
        self._cap, self._origin = cap, None

    def grab(self) -> bool:
        cap = self._require()
        if not cap.grab():
            if not self._is_file:
                raise SourceError("read failed or timed out")
            if not self._loop:
                return False
            cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            self._origin = None
            if not cap.grab():
                raise SourceError("cannot rewind the file")
        if self._is_file and self._realtime:
            self._pace(cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0)
        return True

    def _pace(self, media_s: float) -> None:
        now = time.monotonic()
        if self._origin is None:
            self._origin = now - media_s
        delay = self._origin + media_s - now
        if delay > 0:
            self._wait(delay)

    def retrieve(self) -> Image | None:
        ok, frame = self._require().retrieve()
        return frame if ok and frame is not None else None  # type: ignore[return-value]

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    def _require(self) -> cv2.VideoCapture:
        if self._cap is None:
            raise SourceError("source is not open")
        return self._cap


class FolderSource:
    """A directory of images replayed as a camera at `fps` images per second.

    Files matching `pattern` are sorted by name and `select` picks a subset, so several demo
    cameras can show different images from one folder. Missing or empty folders raise
    SourceError at open (the camera retries with backoff, like an unreachable camera).
    """

    def __init__(
        self, folder: Path, pattern: str, select: slice, fps: float, loop: bool, wait: Wait
    ) -> None:
        self._folder, self._pattern, self._select = folder, pattern, select
        self._interval_s = 1.0 / fps
        self._loop, self._wait = loop, wait
        self._files: list[Path] = []
        self._next = 0
        self._due: float | None = None
        self._data = b""

    def open(self) -> None:
        if not self._folder.is_dir():
            raise SourceError(f"no such folder: {self._folder}")
        files = sorted(p for p in self._folder.glob(self._pattern) if p.is_file())
        self._files = files[self._select]
        if not self._files:
            raise SourceError(f"no images match {self._pattern!r} (slice {self._select}) here")
        self._next, self._due = 0, None

    def grab(self) -> bool:
        if self._next >= len(self._files):
            if not self._loop:
                return False
            self._next = 0
        now = time.monotonic()
        if self._due is not None and self._due > now:
            self._wait(self._due - now)
        self._due = max(self._due or now, now - self._interval_s) + self._interval_s
        path = self._files[self._next]
        self._next += 1
        try:
            self._data = path.read_bytes()
        except OSError as error:
            raise SourceError(f"cannot read {path.name}: {error.strerror}") from error
        return True

    def retrieve(self) -> Image | None:
        image = cv2.imdecode(np.frombuffer(self._data, np.uint8), cv2.IMREAD_COLOR)
        return image  # type: ignore[return-value]

    def close(self) -> None:
        self._files, self._data = [], b""


def make_source(
    camera: CameraConfig, open_timeout_s: float, read_timeout_s: float, wait: Wait
) -> FrameSource:
    """The source a camera's config describes (not yet opened)."""
    kind = camera.kind
    if kind is SourceKind.FOLDER:
        fps = camera.source_fps or camera.fps
        return FolderSource(
            Path(camera.location), camera.glob, camera.python_slice(), fps, camera.loop, wait
        )
    target: str | int = int(camera.location) if kind is SourceKind.WEBCAM else camera.location
    return OpenCvSource(
        target,
        is_file=kind is SourceKind.FILE,
        realtime=camera.realtime,
        loop=camera.loop,
        open_timeout_s=open_timeout_s,
        read_timeout_s=read_timeout_s,
        wait=wait,
    )
