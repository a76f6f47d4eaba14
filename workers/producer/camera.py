"""One thread per camera: open, read, sample, encode, submit; reconnect on failure.

Isolation: every camera has its own thread, source, sampler and sequence generator, and the
only thing cameras share is the sender's non-blocking `submit`. Any error in one camera —
an unreachable URL, a stalled stream (the source's read timeout), a corrupt frame, even an
unexpected exception — is caught in that camera's loop, logged with its id, and followed by
a reconnect after exponential backoff with jitter (so a hundred cameras behind one failed
switch do not reconnect in lock-step). A source that never existed just keeps retrying at the
maximum backoff; the other cameras never notice.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime

from runtime.backoff import Backoff, BackoffPolicy
from runtime.logs import get_logger
from schemas.common import utc_now
from workers.producer.config import CameraConfig
from workers.producer.health import SourceHealth
from workers.producer.metrics import DropReason, ProducerMetrics
from workers.producer.sampling import Rejected, TimeSampler, encode_frame
from workers.producer.sender import OutgoingFrame
from workers.producer.sequence import SequenceGenerator
from workers.producer.sources import FrameSource, SourceError

log = get_logger("producer.camera")


class CameraWorker:
    """Reads one camera until `stop` is set or a non-looping source ends."""

    def __init__(
        self,
        camera: CameraConfig,
        open_source: Callable[[], FrameSource],
        submit: Callable[[OutgoingFrame], None],
        metrics: ProducerMetrics,
        max_frame_bytes: int,
        backoff: BackoffPolicy,
        stop: threading.Event,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.camera = camera
        self._open_source, self._submit = open_source, submit
        self._metrics, self._max_bytes = metrics, max_frame_bytes
        self._backoff, self._stop, self._clock = backoff, stop, clock
        self.sequence = SequenceGenerator()
        self._last_frame = [time.monotonic()]
        self._rejected = 0
        self.health = SourceHealth("connecting", clock())
        self._log = log.bind(camera_id=camera.id)
        metrics.track_frame_age(camera.id, self._last_frame)
        metrics.connected.labels(camera.id).set(0)
        self.thread = threading.Thread(target=self.run, name=f"camera-{camera.id}", daemon=True)

    def run(self) -> None:
        backoff = Backoff(self._backoff)
        attempt = 0
        while not self._stop.is_set():
            source = self._open_source()
            frames = 0
            health = self.health
            try:
                health.enter("connecting", self._clock())
                source.open()
                health.enter("connected", self._clock())
                self._metrics.connected.labels(self.camera.id).set(1)
                self._log.info("camera_connected", source_kind=self.camera.kind.value)
                ended, frames = self._pump(source)
                if ended:
                    health.enter("finished", self._clock())
                    self._log.info("source_finished")
                    return
                health.enter("disconnected", self._clock())
            except SourceError as error:
                health.enter("disconnected", self._clock(), str(error))
                self._log.warning("camera_source_failed", reason=str(error), attempt=attempt)
            except Exception as error:  # a bug in one camera must not take the others down
                health.enter(
                    "disconnected", self._clock(), f"internal error: {type(error).__name__}"
                )
                self._log.exception("camera_loop_error", attempt=attempt)
            finally:
                source.close()
                self._metrics.connected.labels(self.camera.id).set(0)
            if self._stop.is_set():
                return
            attempt = 0 if frames else attempt + 1
            if frames:
                backoff.reset()
            delay = backoff.next_delay() or self._backoff.max_s  # unbounded: never None
            self._metrics.reconnects.labels(self.camera.id).inc()
            health.reconnects += 1
            self._log.info("camera_reconnect_scheduled", delay_s=round(delay, 2))
            self._stop.wait(delay)

    def _pump(self, source: FrameSource) -> tuple[bool, int]:
        """Read until stopped (False), the source ended (True), or it raises SourceError."""
        camera, metrics = self.camera, self._metrics
        sampler = TimeSampler(camera.fps)
        frames = 0
        while not self._stop.is_set():
            if not source.grab():
                return True, frames
            now = time.monotonic()
            captured_at = self._clock()
            frames += 1
            self._last_frame[0] = now
            self.health.last_frame_at = captured_at
            metrics.frames_read.labels(camera.id).inc()
            if not sampler.take(now):
                continue
            image = source.retrieve()
            if image is None:
                metrics.dropped(camera.id, DropReason.DECODE_FAILED)
                continue
            started = time.perf_counter()
            result = encode_frame(
                image, camera.max_resolution_wh, camera.jpeg_quality, self._max_bytes
            )
            metrics.encode_seconds.labels(camera.id).observe(time.perf_counter() - started)
            if isinstance(result, Rejected):
                self._reject(result)
                continue
            metrics.frames_encoded.labels(camera.id).inc()
            if result.degraded:
                metrics.frames_degraded.labels(camera.id).inc()
            self._submit(
                OutgoingFrame(
                    camera_id=camera.id,
                    seq=self.sequence.next(captured_at),
                    captured_at=captured_at,
                    jpeg=result.jpeg,
                    width=result.width,
                    height=result.height,
                    labels=camera.labels,
                )
            )
            self.health.encoded += 1
        return False, frames

    def _reject(self, rejected: Rejected) -> None:
        self._metrics.dropped(self.camera.id, DropReason.OVERSIZED)
        self._rejected += 1
        if self._rejected % 100 == 1:  # the first, then every 100th: no log flood
            self._log.warning(
                "frame_rejected", reason=rejected.reason, rejected_total=self._rejected
            )
