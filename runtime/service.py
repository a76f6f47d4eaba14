"""The one service runtime every stage runs in: signals, health endpoints, metrics.

Stages never handle signals themselves. SIGTERM / SIGINT set `runtime.stopping`; a stage's
loop checks it, finishes its in-flight work, makes its final commit and returns. The HTTP
side serves `/healthz` (the process is alive and its loop is turning), `/readyz` (it can do
useful work now: e.g. the model server answers) and `/metrics` (Prometheus text format).
"""

from __future__ import annotations

import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

from runtime.logs import get_logger

log = get_logger("runtime")


class Health:
    """Thread-safe liveness heartbeat and readiness flag with a reason.

    Besides the stage's own flag (`set_ready`), any dependency watched apart from the
    stage's work (the broker, see runtime.broker) can hold readiness down with `block`:
    the service is ready only when its flag is set and nothing blocks it, so one check
    clearing its condition never reports ready over another's.
    """

    def __init__(self, stall_after_s: float = 120.0) -> None:
        self._lock = threading.Lock()
        self._ready = False
        self._reason = "starting"
        self._blocked: dict[str, str] = {}
        self._beat = time.monotonic()
        self.stall_after_s = stall_after_s

    def beat(self) -> None:
        """Called by the stage's loop on every turn; a loop that stops beating is not live."""
        with self._lock:
            self._beat = time.monotonic()

    def set_ready(self, ready: bool, reason: str = "") -> None:
        with self._lock:
            if ready != self._ready or reason != self._reason:
                log.info("readiness", ready=ready, reason=reason)
            self._ready, self._reason = ready, reason

    def block(self, name: str, reason: str | None) -> None:
        """Hold readiness down for `name` with `reason`; None lifts that block."""
        with self._lock:
            if self._blocked.get(name) != reason:
                log.info("readiness_block", name=name, reason=reason or "cleared")
            if reason is None:
                self._blocked.pop(name, None)
            else:
                self._blocked[name] = reason

    @property
    def live(self) -> bool:
        with self._lock:
            return time.monotonic() - self._beat < self.stall_after_s

    @property
    def ready(self) -> tuple[bool, str]:
        with self._lock:
            if self._blocked:
                return False, "; ".join(f"{n}: {r}" for n, r in sorted(self._blocked.items()))
            return self._ready, self._reason


class ServiceRuntime:
    """Signals, health and metrics for one service process."""

    def __init__(
        self,
        name: str,
        health_port: int | None,
        registry: CollectorRegistry = REGISTRY,
        host: str = "0.0.0.0",
    ) -> None:
        self.name = name
        self.stopping = threading.Event()
        self.health = Health()
        self._registry = registry
        self._server: ThreadingHTTPServer | None = None
        if health_port is not None:
            self._server = ThreadingHTTPServer((host, health_port), self._handler())
            self._server.daemon_threads = True
            threading.Thread(target=self._server.serve_forever, daemon=True).start()
            log.info("health_endpoints", port=self.port)

    @property
    def port(self) -> int | None:
        return self._server.server_address[1] if self._server else None

    def install_signal_handlers(self) -> None:
        """SIGTERM and SIGINT request a graceful stop (only from the main thread)."""
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        log.info("stop_requested", signal=signal.Signals(signum).name)
        self.stopping.set()

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        runtime = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/metrics":
                    self._send(200, generate_latest(runtime._registry), CONTENT_TYPE_LATEST)
                elif self.path == "/healthz":
                    live = runtime.health.live
                    self._send(200 if live else 503, b"ok\n" if live else b"stalled\n")
                elif self.path == "/readyz":
                    ready, reason = runtime.health.ready
                    ready = ready and not runtime.stopping.is_set()
                    body = ("ready\n" if ready else f"not ready: {reason}\n").encode()
                    self._send(200 if ready else 503, body)
                else:
                    self._send(404, b"not found\n")

            def _send(self, status: int, body: bytes, content_type: str = "text/plain") -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                return

        return Handler
