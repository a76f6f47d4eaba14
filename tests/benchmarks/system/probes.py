"""What the system benchmark and the soak watch: end-to-end latency, lag, CPU and memory.

- Latency, capture → counted in Redis: the aggregator publishes the changed cameras on the
  `updates` channel right after Redis confirmed a batch; on each message the probe reads
  those cameras' `latest` summaries and, for a (camera, seq) it has not seen, records
  `receive time − capture time`. Only the newest frame of a camera per batch is sampled
  (benchmarks run many cameras at low per-camera rates, so nearly every frame is).
- Processes: psutil CPU time (per-interval, in cores) and RSS of the stages and the stack.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import psutil
import redis

from schemas.redis_state import Keys

REPO = Path(__file__).resolve().parents[3]


@dataclass
class LatencyProbe:
    """Samples capture → counted latency from the aggregator's update notifications."""

    client: redis.Redis
    keys: Keys
    samples: list[tuple[float, float]] = field(default_factory=list)
    """(counted at, latency s) per sampled frame."""
    _seen: set[tuple[str, int]] = field(default_factory=set)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        pubsub = self.client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
        pubsub.subscribe(self.keys.updates)

        def loop() -> None:
            while not self._stop.is_set():
                message = pubsub.get_message(timeout=0.2)
                if message is None:
                    continue
                now = time.time()
                cameras = json.loads(message["data"]).get("cameras", [])
                if not cameras:
                    continue
                pipe = self.client.pipeline(transaction=False)
                for camera in cameras:
                    pipe.hget(self.keys.latest(camera), "json")
                for camera, raw in zip(cameras, pipe.execute(), strict=True):
                    if raw is None:
                        continue
                    summary = json.loads(raw)
                    key = (camera, int(summary["seq"]))
                    if key in self._seen:
                        continue
                    self._seen.add(key)
                    captured = datetime.fromisoformat(summary["captured_at"]).timestamp()
                    self.samples.append((now, now - captured))
            pubsub.close()

        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()

    def between(self, start: float, end: float) -> list[float]:
        return [lat for at, lat in self.samples if start <= at <= end]

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def stack_pids(state_dir: Path = REPO / "var" / "stack") -> dict[str, int]:
    """PIDs of the local stack's services from `maskwatch stack`'s pid files."""
    found = {}
    for name, pidfile in (
        ("kafka", "kafka/kafka.pid"),
        ("redis", "redis/redis.pid"),
        ("model-server", "serve/serve.pid"),
    ):
        try:
            found[name] = int((state_dir / pidfile).read_text().strip())
        except (OSError, ValueError):
            continue
    return found


@dataclass
class ProcessStats:
    """CPU (cores, averaged over an interval) and RSS of named processes."""

    pids: dict[str, int]
    _start: dict[str, tuple[float, float]] = field(default_factory=dict)
    rss_trace: dict[str, list[tuple[float, int]]] = field(default_factory=dict)

    def _cpu(self, pid: int) -> float:
        process = psutil.Process(pid)
        total = float(sum(process.cpu_times()[:2]))
        for child in process.children(recursive=True):
            try:
                total += sum(child.cpu_times()[:2])
            except psutil.Error:
                continue
        return total

    def mark(self) -> None:
        """Start an interval."""
        now = time.monotonic()
        self._start = {}
        for name, pid in self.pids.items():
            try:
                self._start[name] = (now, self._cpu(pid))
            except psutil.Error:
                continue

    def rss_mb(self, name: str) -> float | None:
        try:
            return float(psutil.Process(self.pids[name]).memory_info().rss) / 2**20
        except (psutil.Error, KeyError):
            return None

    def sample_rss(self) -> None:
        now = time.time()
        for name in self.pids:
            rss = self.rss_mb(name)
            if rss is not None:
                self.rss_trace.setdefault(name, []).append((now, int(rss)))

    def interval(self) -> dict[str, dict[str, float]]:
        """name → {cpu_cores, rss_mb} since `mark()`."""
        now = time.monotonic()
        out = {}
        for name, (t0, cpu0) in self._start.items():
            try:
                cores = (self._cpu(self.pids[name]) - cpu0) / max(now - t0, 1e-6)
            except psutil.Error:
                continue
            out[name] = {"cpu_cores": round(cores, 3), "rss_mb": round(self.rss_mb(name) or 0, 1)}
        return out
