"""Alert webhook: POSTs alert events from a background thread, never blocking aggregation.

The aggregation loop only puts events on a bounded queue (`offer` never waits); when the
queue is full the event is dropped and counted — the alerts topic and Redis still have it.
The thread retries each POST with exponential backoff, then gives up and counts a failure.
"""

from __future__ import annotations

import queue
import threading
import time
import urllib.error
import urllib.request

from prometheus_client import Counter

from runtime.backoff import Backoff, BackoffPolicy
from runtime.logs import get_logger
from schemas.alert import AlertEvent
from schemas.common import encode

log = get_logger("aggregator.webhook")

WEBHOOK_EVENTS = Counter(
    "maskwatch_aggregator_webhook_events_total",
    "Alert webhook deliveries by outcome.",
    ["outcome"],
)


class WebhookNotifier:
    """A daemon thread draining a bounded queue of alert events into HTTP POSTs."""

    def __init__(
        self,
        url: str,
        queue_size: int = 1000,
        retries: int = 5,
        timeout_s: float = 5.0,
        backoff_s: float = 0.5,
    ) -> None:
        self.url = url
        self.retries = retries
        self.timeout_s = timeout_s
        self.backoff_s = backoff_s
        self._queue: queue.Queue[AlertEvent | None] = queue.Queue(maxsize=queue_size)
        self._thread = threading.Thread(target=self._run, name="alert-webhook", daemon=True)
        self._thread.start()

    def offer(self, event: AlertEvent) -> bool:
        """Queue an event for delivery; False (and counted) if the queue is full."""
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            WEBHOOK_EVENTS.labels("dropped").inc()
            log.warning("webhook_queue_full", camera_id=event.camera_id, rule=event.rule)
            return False
        return True

    def close(self, timeout_s: float = 5.0) -> None:
        """Deliver what is queued within `timeout_s`, then stop the thread (a daemon thread,
        so undelivered events never hold the process up)."""
        try:
            self._queue.put(None, timeout=timeout_s)
        except queue.Full:
            return
        self._thread.join(timeout_s)

    def _run(self) -> None:
        while True:
            event = self._queue.get()
            if event is None:
                return
            self._deliver(event)

    def _deliver(self, event: AlertEvent) -> None:
        body = encode(event)
        backoff = Backoff(
            BackoffPolicy(
                initial_s=self.backoff_s,
                max_s=min(max(self.backoff_s * 2 ** (self.retries - 1), self.backoff_s), 3600.0),
                max_attempts=self.retries,
            )
        )
        while True:
            request = urllib.request.Request(
                self.url, data=body, method="POST", headers={"Content-Type": "application/json"}
            )
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_s) as reply:
                    if 200 <= reply.status < 300:
                        WEBHOOK_EVENTS.labels("delivered").inc()
                        return
            except (urllib.error.URLError, OSError) as error:
                log.warning("webhook_failed", attempt=backoff.attempts + 1, error=str(error))
            delay = backoff.next_delay()
            if delay is None:
                break
            time.sleep(delay)
        WEBHOOK_EVENTS.labels("failed").inc()
        log.error("webhook_gave_up", camera_id=event.camera_id, rule=event.rule)
