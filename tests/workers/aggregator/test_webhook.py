"""Alert webhook: retried POSTs from a background thread, a bounded queue that never blocks."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from schemas.alert import AlertEvent
from workers.aggregator.webhook import WebhookNotifier


def event(camera: str = "cam") -> AlertEvent:
    return AlertEvent(
        camera_id=camera,
        rule="camera_silent",
        state="firing",
        value=61.0,
        threshold=60.0,
        at=datetime.now(UTC),
        message="silent",
    )


class Receiver:
    """A local HTTP endpoint that fails the first `failures` POSTs with 500."""

    def __init__(self, failures: int, delay_s: float = 0.0) -> None:
        self.bodies: list[bytes] = []
        self.attempts = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                receiver.attempts += 1
                body = self.rfile.read(int(self.headers["Content-Length"]))
                time.sleep(delay_s)
                ok = receiver.attempts > failures
                if ok:
                    receiver.bodies.append(body)
                self.send_response(204 if ok else 500)
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(failures=2)
    yield r
    r.server.shutdown()


def test_delivery_is_retried_until_the_endpoint_accepts(receiver: Receiver) -> None:
    notifier = WebhookNotifier(receiver.url, retries=5, backoff_s=0.01)
    assert notifier.offer(event("cam-x"))
    notifier.close(timeout_s=5)
    assert receiver.attempts == 3
    assert [AlertEvent.model_validate_json(b).camera_id for b in receiver.bodies] == ["cam-x"]


def test_a_full_queue_drops_instead_of_blocking() -> None:
    slow = Receiver(failures=0, delay_s=0.5)
    notifier = WebhookNotifier(slow.url, queue_size=2, retries=1)
    accepted = [notifier.offer(event(f"c{i}")) for i in range(10)]
    # a blocking offer would have waited for room and accepted all ten
    assert accepted.count(False) >= 7
    notifier.close(timeout_s=0.1)
    slow.server.shutdown()
