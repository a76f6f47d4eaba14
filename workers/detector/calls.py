"""Calling the classifier from the worker: which failures to wait out, retry, or give up on.

Three kinds of failure, three rules (the client itself does not retry, so waits never stack):
- `outage` (UNAVAILABLE, connection refused or reset): the server is down or restarting.
  Nothing is wrong with the frames, so none is given up: the worker waits with an unbounded
  back-off, not ready, its partitions paused, and the frames stay uncommitted.
- `busy` (DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED): the server answers but not this call. It
  may be this batch (too many crops, a pathological input), so retries are bounded
  (`max_attempts`); then `ClassifierBusyError`, and the caller retries frame by frame and
  dead-letters a frame that still fails as `classifier_unavailable`.
- `error` (anything else: INVALID_ARGUMENT, a malformed answer): `ClassifyError`, which the
  caller also retries frame by frame and then dead-letters as `processing_failed`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

import grpc
import numpy as np
import numpy.typing as npt

from runtime.backoff import Backoff, BackoffPolicy
from runtime.logs import get_logger
from workers.detector import metrics
from workers.detector.classifier import Classifier, ClassifierError
from workers.detector.settings import DetectorSettings

log = get_logger("detector")

FailureKind = Literal["outage", "busy", "error"]
OUTAGE_CODES = frozenset({grpc.StatusCode.UNAVAILABLE})
BUSY_CODES = frozenset({grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.RESOURCE_EXHAUSTED})


def failure_kind(error: BaseException) -> FailureKind:
    """Which rule of the module doc a classifier failure falls under."""
    code = None
    if isinstance(error, ClassifierError):
        code = error.code
    elif isinstance(error, grpc.RpcError):
        code = error.code()  # type: ignore[attr-defined]
    elif isinstance(error, ConnectionError):
        return "outage"
    if code in OUTAGE_CODES:
        return "outage"
    if code in BUSY_CODES:
        return "busy"
    return "error"


class ClassifyError(Exception):
    """A classifier failure that retrying later will not fix by itself."""


class ClassifierBusyError(Exception):
    """The server kept timing out or refusing this call within its bounded retries."""


Answer = tuple[npt.NDArray[np.float32], float]
"""N×2 probabilities and the call's milliseconds."""


class ClassifierCalls:
    """One classify call under the rules above.

    `wait(seconds)` waits while the worker stays a live group member and returns False if
    it is stopping; `set_ready` reports readiness; `on_answer` runs after every success.
    """

    def __init__(
        self,
        classifier: Classifier,
        outage: BackoffPolicy,
        busy: BackoffPolicy,
        wait: Callable[[float], bool],
        set_ready: Callable[[bool, str], None],
        on_answer: Callable[[], None],
    ) -> None:
        self.classifier = classifier
        self.outage, self.busy = outage, busy
        self.wait, self.set_ready, self.on_answer = wait, set_ready, on_answer

    def classify(
        self, crops: npt.NDArray[np.uint8], failed: BaseException | None = None
    ) -> Answer | None:
        """The answer; None if asked to stop during an outage; ClassifyError or
        ClassifierBusyError as the module doc says. `failed` is the error of a first call
        already made (in the background, by `attempt`): it is handled as this call's first."""
        outage, busy = Backoff(self.outage), Backoff(self.busy)
        while True:
            if failed is None:
                try:
                    probabilities, elapsed_ms = self.attempt(crops)
                except Exception as error:  # sorted into outage, busy or error below
                    failed = error
                else:
                    return self.answered(crops, probabilities, elapsed_ms)
            kind = failure_kind(failed)
            metrics.CLASSIFIER_FAILURES.labels(kind).inc()
            log.warning("classify_failed", kind=kind, crops=len(crops), error=repr(failed))
            if kind == "error":
                raise ClassifyError(repr(failed)) from failed
            if kind == "busy":
                delay = busy.next_delay()
                if delay is None:
                    raise ClassifierBusyError(repr(failed)) from failed
            else:
                self.set_ready(False, "model server unavailable")
                delay = outage.next_delay() or self.outage.max_s
            failed = None
            if not self.wait(delay):
                return None

    def attempt(self, crops: npt.NDArray[np.uint8]) -> Answer:
        """One call, timed, nothing else: safe off the worker's thread (the client is)."""
        started = time.perf_counter()
        probabilities = np.asarray(self.classifier.classify(crops), np.float32)
        return probabilities, (time.perf_counter() - started) * 1000

    def answered(
        self, crops: npt.NDArray[np.uint8], probabilities: npt.NDArray[np.float32], ms: float
    ) -> Answer:
        """Book a successful call (metrics, readiness, the model version it reported), on
        the worker's thread; the answer, unchanged."""
        metrics.CLASSIFY_MS.observe(ms)
        metrics.BATCH_CROPS.observe(len(crops))
        self.set_ready(True, "")
        self.on_answer()
        return probabilities, ms


def outage_policy(settings: DetectorSettings) -> BackoffPolicy:
    """Waiting out a model-server outage: unbounded (frames are never given up for it)."""
    return BackoffPolicy(initial_s=settings.backoff_initial_s, max_s=settings.backoff_max_s)


def busy_policy(settings: DetectorSettings) -> BackoffPolicy:
    """Retrying a timed-out or refused call: `max_attempts` calls, then the frame is judged."""
    return BackoffPolicy(
        initial_s=settings.backoff_initial_s,
        max_s=settings.backoff_max_s,
        max_attempts=settings.max_attempts,
    )
