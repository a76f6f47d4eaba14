"""Load generator: N simulated cameras replaying ../shared crowd photos into the frames topic.

Frames are the photos' own JPEG bytes with the typed `mw-*` headers a producer writes
(capture time = the moment of sending), paced at a fixed total rate spread round-robin over
the cameras. Every send is tracked with its Kafka acknowledgement, so a benchmark or soak
knows exactly which (camera, seq) frames entered the pipeline — the ground truth that
Redis is checked against. It also writes the bad messages of the fault run.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from kafka import KafkaProducer

from runtime.kafka import KafkaSettings, make_producer
from schemas.frame import HEADER_SCHEMA_VERSION, FrameMeta, frame_headers

SHARED = Path(__file__).resolve().parents[3].parent / "shared"
PHOTOS = SHARED / "data" / "crowd" / "images"


@dataclass(frozen=True)
class Photo:
    jpeg: bytes
    width: int
    height: int


def load_photos(count: int, start: int = 0, folder: Path = PHOTOS) -> list[Photo]:
    """`count` crowd photos (sorted by name, from `start`), with their sizes."""
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} not found: the crowd photos live in ../shared")
    photos = []
    for path in sorted(folder.glob("*.jpg"))[start : start + count]:
        data = path.read_bytes()
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if image is None:
            raise ValueError(f"{path} does not decode")
        photos.append(Photo(data, int(image.shape[1]), int(image.shape[0])))
    return photos


@dataclass(frozen=True)
class Sent:
    """One message handed to Kafka, and what became of it."""

    camera: str
    seq: int
    captured_at: datetime
    future: Any
    kind: str = "valid"
    """'valid' for a frame that must be counted; else the dead-letter reason it must get."""


@dataclass
class LoadGen:
    """Sends frames for `cameras` at `rate_fps` in total; one producer, one thread."""

    kafka: KafkaSettings
    cameras: list[str]
    photos: list[Photo]
    producer: KafkaProducer = field(init=False)
    sent: list[Sent] = field(default_factory=list)
    _seq: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.producer = make_producer(self.kafka, "maskwatch-loadgen", max_block_ms=120_000)

    def next_seq(self, camera: str) -> int:
        with self._lock:
            self._seq[camera] = self._seq.get(camera, 0) + 1
            return self._seq[camera]

    def send(
        self,
        camera: str,
        photo: Photo,
        kind: str = "valid",
        headers: list[tuple[str, bytes]] | None = None,
        value: bytes | None = None,
        topic: str | None = None,
    ) -> Sent:
        """Send one frame now (capture time = now); `headers`/`value` override for bad ones."""
        seq = self.next_seq(camera)
        meta = FrameMeta(
            camera_id=camera,
            seq=seq,
            captured_at=datetime.now(UTC),
            width=photo.width,
            height=photo.height,
        )
        future = self.producer.send(
            topic or self.kafka.frames_topic,
            key=camera.encode(),
            value=photo.jpeg if value is None else value,
            headers=frame_headers(meta) if headers is None else headers,
        )
        sent = Sent(camera, seq, meta.captured_at, future, kind)
        with self._lock:
            self.sent.append(sent)
        return sent

    def stream(
        self,
        rate_fps: float,
        frames: int | None = None,
        seconds: float | None = None,
        stop: threading.Event | None = None,
    ) -> int:
        """Send at `rate_fps` (round-robin cameras, cycling photos) until `frames` are sent,
        `seconds` pass or `stop` is set; a late schedule catches up rather than drifting."""
        interval = 1.0 / rate_fps
        started = time.monotonic()
        n = 0
        while (frames is None or n < frames) and (
            seconds is None or time.monotonic() - started < seconds
        ):
            if stop is not None and stop.is_set():
                break
            delay = started + n * interval - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            self.send(self.cameras[n % len(self.cameras)], self.photos[n % len(self.photos)])
            n += 1
        self.producer.flush()
        return n

    def acknowledged(self, kind: str = "valid") -> tuple[list[Sent], list[Sent]]:
        """(acknowledged, failed) sends of `kind`, after flushing."""
        self.producer.flush()
        good, bad = [], []
        for sent in self.sent:
            if sent.kind != kind:
                continue
            try:
                sent.future.get(timeout=0)
                good.append(sent)
            except Exception:  # any failure means "not known to be in Kafka"
                bad.append(sent)
        return good, bad

    def close(self) -> None:
        self.producer.flush()
        self.producer.close(timeout=30)


def inject_bad(
    gen: LoadGen, photo: Photo, known_camera: str, results_topic: str, max_frame_bytes: int
) -> list[Sent]:
    """One of each bad message, each tagged with the dead-letter reason it must end with."""
    meta_headers = frame_headers(
        FrameMeta(
            camera_id=known_camera,
            seq=gen.next_seq(known_camera),
            captured_at=datetime.now(UTC),
            width=photo.width,
            height=photo.height,
        )
    )
    wrong_version = [(k, b"9" if k == HEADER_SCHEMA_VERSION else v) for k, v in meta_headers]
    bad = [
        gen.send(
            known_camera,
            photo,
            "corrupt_image",
            value=photo.jpeg[: len(photo.jpeg) // 3][:200] + b"\x00garbage" * 50,
        ),
        gen.send(known_camera, photo, "unsupported_schema_version", headers=wrong_version),
        gen.send(
            known_camera,
            photo,
            "oversized_frame",
            value=photo.jpeg + b"\x00" * (max_frame_bytes + 1024 - len(photo.jpeg)),
        ),
        gen.send("intruder-cam-99", photo, "unknown_camera"),
        gen.send(
            known_camera,
            photo,
            "unsupported_schema_version",
            topic=results_topic,
            value=b'{"schema_version": 9, "camera_id": "%s"}' % known_camera.encode(),
            headers=[],
        ),
    ]
    return bad
