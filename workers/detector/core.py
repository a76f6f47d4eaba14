"""The detector's pure core: a frame message in, a pending frame, result or dead letter out.

Classification is batched across frames, so handling a frame has two halves: `prepare`
validates the message, decodes the JPEG, detects and crops faces (or answers at once: a dead
letter for bad input, a `skipped` result for a frame past its max age, an empty result for a
frame with no faces); `finish` turns a pending frame and its crops' class probabilities into
the `FrameResult`. No Kafka, gRPC or clocks in here: times are passed in.

Hostile input is refused before anything large is allocated: headers are parsed once
(`read`) into the `FrameMeta` that travels with the frame; the payload's magic bytes must be
the JPEG's, its SOF header must declare the headers' width and height and at most
`max_image_px` pixels, and only then is it decoded (see `imaging.jpeg`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import cv2
import numpy as np
import numpy.typing as npt

from imaging.crop import CropConfig, ImageBGR, crop_faces
from imaging.detections import Detections
from imaging.jpeg import jpeg_size_px, sniff_format
from schemas.common import DeadLetterReason, SchemaError
from schemas.dead_letter import DeadLetter, build_dead_letter
from schemas.frame import FrameMeta, camera_id_from_headers, parse_frame_headers
from schemas.model_server import WITH_MASK
from schemas.result import (
    Face,
    FrameResult,
    ModelRef,
    SkipReason,
    StageTimings,
    counts_of,
)
from workers.detector.backends.base import FaceDetector


@dataclass(frozen=True)
class FrameMessage:
    """A record of the frames topic, as the core needs it (no Kafka types)."""

    topic: str
    partition: int
    offset: int
    value: bytes | None
    headers: list[tuple[str, bytes]]


@dataclass(frozen=True)
class CoreConfig:
    """Per-worker constants of the core."""

    worker_id: str
    classifier_name: str
    crop: CropConfig
    max_age_s: float
    max_frame_bytes: int
    mask_threshold: float = 0.5
    known_cameras: frozenset[str] | None = None
    """Camera ids this deployment expects; frames of any other are dead-lettered as
    `unknown_camera` (None: every camera is accepted)."""
    max_image_px: int = 3840 * 2160 * 2
    """Most pixels a frame's JPEG header may declare (decoded: 3 bytes each)."""
    max_clock_skew_s: float = 300.0
    """How far in the future (by this worker's clock) a frame's capture time may lie."""


@dataclass(frozen=True)
class PendingFrame:
    """A detected frame waiting for its crops to be classified.

    Attributes:
        crops_rgb: N×S×S×3 uint8 RGB crops, one per detection, in detection order.
        started_s: `time.perf_counter()` when the frame was taken, for `total_ms`.
    """

    message: FrameMessage
    meta: FrameMeta
    frame_wh: tuple[int, int]
    detections: Detections
    crops_rgb: npt.NDArray[np.uint8]
    decode_ms: float
    detect_ms: float
    started_s: float


Outcome = PendingFrame | FrameResult | DeadLetter


class Core:
    """Stateless frame handling around one detector."""

    def __init__(self, detector: FaceDetector, config: CoreConfig) -> None:
        self.detector = detector
        self.config = config
        self.detector_ref = ModelRef(name=detector.name, version=detector.version)
        self.classifier_ref = ModelRef(name=config.classifier_name, version="unknown")
        """Updated by the worker from the model server's answers (the version serving now)."""

    def read(self, message: FrameMessage, now: datetime) -> FrameMeta | DeadLetter:
        """The frame's headers, parsed once, or the dead letter saying why they are refused
        (malformed, unknown camera, captured in the future beyond the clock skew)."""
        try:
            meta = parse_frame_headers(message.headers)
        except SchemaError as error:
            return self.dead_letter(message, error.code, error.message)
        known = self.config.known_cameras
        if known is not None and meta.camera_id not in known:
            return self.dead_letter(
                message,
                DeadLetterReason.UNKNOWN_CAMERA,
                f"camera {meta.camera_id!r} is not in known_cameras",
                meta,
            )
        if meta.captured_at - now > timedelta(seconds=self.config.max_clock_skew_s):
            return self.dead_letter(
                message,
                DeadLetterReason.OUT_OF_RANGE,
                f"captured_at {meta.captured_at.isoformat()} is more than "
                f"{self.config.max_clock_skew_s:g} s after now",
                meta,
            )
        return meta

    def prepare(self, message: FrameMessage, now: datetime) -> Outcome:
        """`read`, then `detect` (for callers that hold no parsed headers yet)."""
        meta = self.read(message, now)
        return meta if isinstance(meta, DeadLetter) else self.detect(message, meta, now)

    def detect(self, message: FrameMessage, meta: FrameMeta, now: datetime) -> Outcome:
        """Check, decode, detect and crop; raises only for unexpected failures (which the
        caller retries and eventually dead-letters as `processing_failed`)."""
        started = time.perf_counter()
        if now - meta.captured_at > timedelta(seconds=self.config.max_age_s):
            return self._result(meta, (meta.width, meta.height), (), now, skipped=True)
        payload = message.value or b""
        refused = self._refuse(payload, meta)
        if refused is not None:
            return self.dead_letter(message, refused[0], refused[1], meta)
        decoded_any = cv2.imdecode(np.frombuffer(payload, np.uint8), cv2.IMREAD_COLOR)
        if decoded_any is None or decoded_any.size == 0:
            return self.dead_letter(
                message, DeadLetterReason.CORRUPT_IMAGE, "JPEG does not decode", meta
            )
        image: ImageBGR = np.asarray(decoded_any, np.uint8)
        decoded = time.perf_counter()
        detections = self.detector.detect(image)
        detected = time.perf_counter()
        crops = crop_faces(image, detections.xyxy, self.config.crop)[..., ::-1]
        return PendingFrame(
            message=message,
            meta=meta,
            frame_wh=(image.shape[1], image.shape[0]),
            detections=detections,
            crops_rgb=np.ascontiguousarray(crops),
            decode_ms=(decoded - started) * 1000,
            detect_ms=(detected - decoded) * 1000,
            started_s=started,
        )

    def _refuse(self, payload: bytes, meta: FrameMeta) -> tuple[DeadLetterReason, str] | None:
        """Why the payload must not be decoded, judged from its size and header bytes only."""
        if not payload:
            return DeadLetterReason.CORRUPT_IMAGE, "empty payload"
        if len(payload) > self.config.max_frame_bytes:
            return DeadLetterReason.OVERSIZED_FRAME, f"{len(payload)} bytes"
        found = sniff_format(payload)
        if found != meta.encoding:
            if found is None:
                return DeadLetterReason.CORRUPT_IMAGE, "payload has no known image magic bytes"
            return DeadLetterReason.ENCODING_MISMATCH, f"{found} bytes labelled {meta.encoding}"
        size = jpeg_size_px(payload)
        if size is None:
            return DeadLetterReason.CORRUPT_IMAGE, "JPEG has no readable frame header (SOF)"
        width, height = size
        if width * height > self.config.max_image_px:
            return (
                DeadLetterReason.IMAGE_TOO_LARGE,
                f"JPEG declares {width}x{height} px, over {self.config.max_image_px} px",
            )
        if (width, height) != (meta.width, meta.height):
            return (
                DeadLetterReason.SIZE_MISMATCH,
                f"JPEG is {width}x{height} px, headers say {meta.width}x{meta.height}",
            )
        return None

    def finish(
        self,
        pending: PendingFrame,
        probabilities: npt.NDArray[np.float32],
        classify_ms: float,
        now: datetime,
    ) -> FrameResult | DeadLetter:
        """The result of a pending frame given N×2 probabilities of its N crops; a dead
        letter (`processing_failed`) if the classifier's answer is of another shape or not
        finite (NaN), since no label can be drawn from it."""
        problem = None
        if probabilities.shape != (len(pending.detections), 2):
            problem = (
                f"expected probabilities of shape ({len(pending.detections)}, 2), "
                f"got {probabilities.shape}"
            )
        elif not np.isfinite(probabilities).all():
            problem = "classifier returned non-finite probabilities"
        if problem is not None:
            return self.failed(pending.message, pending.meta, problem, 1)
        masked = np.clip(probabilities[:, WITH_MASK], 0.0, 1.0)
        faces = tuple(
            Face(
                xyxy=(float(b[0]), float(b[1]), float(b[2]), float(b[3])),
                score=float(np.clip(s, 0.0, 1.0)),
                label="with_mask" if p >= self.config.mask_threshold else "without_mask",
                mask_probability=float(p),
            )
            for b, s, p in zip(
                pending.detections.xyxy, pending.detections.scores, masked, strict=True
            )
        )
        timings = StageTimings(
            decode_ms=pending.decode_ms,
            detect_ms=pending.detect_ms,
            classify_ms=classify_ms,
            total_ms=(time.perf_counter() - pending.started_s) * 1000,
        )
        return self._result(pending.meta, pending.frame_wh, faces, now, timings=timings)

    def dead_letter(
        self,
        message: FrameMessage,
        reason: DeadLetterReason,
        text: str,
        meta: FrameMeta | None = None,
        attempts: int = 1,
    ) -> DeadLetter:
        """A dead letter for `message` (bounded: never the payload, only its size and head)."""
        return build_dead_letter(
            source_topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            stage="detector",
            reason=reason,
            message=text,
            payload=message.value,
            camera_id=meta.camera_id if meta else camera_id_from_headers(message.headers),
            seq=meta.seq if meta else None,
            attempts=attempts,
        )

    def failed(
        self,
        message: FrameMessage,
        meta: FrameMeta | None,
        error: str,
        attempts: int,
        reason: DeadLetterReason = DeadLetterReason.PROCESSING_FAILED,
    ) -> DeadLetter:
        """The dead letter of a frame whose processing kept failing, naming its camera and
        sequence from the headers parsed before (None: they were never parsed)."""
        return self.dead_letter(message, reason, error, meta, attempts)

    def _result(
        self,
        meta: FrameMeta,
        frame_wh: tuple[int, int],
        faces: tuple[Face, ...],
        now: datetime,
        skipped: bool = False,
        timings: StageTimings | None = None,
    ) -> FrameResult:
        return FrameResult(
            camera_id=meta.camera_id,
            seq=meta.seq,
            captured_at=meta.captured_at,
            processed_at=now,
            frame_wh=frame_wh,
            status="skipped" if skipped else "processed",
            skip_reason=SkipReason.TOO_OLD if skipped else None,
            faces=faces,
            counts=counts_of(faces),
            detector=self.detector_ref,
            classifier=self.classifier_ref,
            worker_id=self.config.worker_id,
            timings_ms=timings or StageTimings(),
            labels=meta.labels,
        )
