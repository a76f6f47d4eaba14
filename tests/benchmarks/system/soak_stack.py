"""The soak's private stack and stage processes: ports, environment, supervisor, RSS sampler.

Everything runs on free ports with state under var/soak/, so restarting the broker or
stopping Redis never touches the shared stack. The supervisor restarts a stage that exited
(as a Deployment would) and records the exits the soak did not cause.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import click
import psutil

from devtools.processes import maskwatch_argv, port_open, spawn
from devtools.run import Child, Children, child_env
from runtime.kafka import KafkaSettings
from tests.benchmarks.system.loadgen import SHARED
from tests.benchmarks.system.probes import stack_pids
from tests.workers.hostile_inputs import HOSTILE_CAMERA, MAX_FACES, MAX_RESULT_BYTES

REPO = Path(__file__).resolve().parents[3]
STATE = REPO / "var" / "soak"
MAX_FRAME_BYTES = 4 * 1024 * 1024
"""The default: the hostile kinds include a 700 kB header and a 2.6 MB (gzip: small) result."""
DETECTOR_GROUP, AGGREGATOR_GROUP = "soak-detectors", "soak-aggregator"
PREFIX = "soak:"
STAGES = {"detector-0": "detector", "detector-1": "detector", "aggregator-0": "aggregator"}
STAGES["aggregator-1"] = "aggregator"


def free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [int(s.getsockname()[1]) for s in sockets]
    for s in sockets:
        s.close()
    return ports


class Soak:
    """The private stack, the stage processes, their supervisor and the event log."""

    def __init__(self, cameras: list[str]) -> None:
        kafka_port, controller, redis_port, grpc, health = free_ports(5)
        # PYTHONPATH: the stack's and the stages' `maskwatch` run this checkout's code (the
        # venv's script alone would import the checkout the venv was installed from).
        os.environ["PYTHONPATH"] = str(REPO)  # also for the model server, spawned from here
        self.stack_env = {
            **os.environ,
            "PYTHONPATH": str(REPO),
            "MASKWATCH_STACK_MODEL_BASE": str(REPO / "var" / "models"),
            "MASKWATCH_STACK_STATE_DIR": str(STATE / "stack"),
            "MASKWATCH_STACK_KAFKA_PORT": str(kafka_port),
            "MASKWATCH_STACK_CONTROLLER_PORT": str(controller),
            "MASKWATCH_STACK_REDIS_PORT": str(redis_port),
            "MASKWATCH_STACK_GRPC_PORT": str(grpc),
            "MASKWATCH_STACK_SERVE_HEALTH_PORT": str(health),
            "MASKWATCH_STACK_KAFKA_HEAP_MB": "512",
            "MASKWATCH_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{kafka_port}",
            "MASKWATCH_KAFKA_MAX_FRAME_BYTES": str(MAX_FRAME_BYTES),
        }
        self.kafka = KafkaSettings(
            bootstrap_servers=f"127.0.0.1:{kafka_port}", max_frame_bytes=MAX_FRAME_BYTES
        )
        self.redis_port = redis_port
        self.grpc_port, self.serve_health_port = grpc, health
        env = child_env(PREFIX, 0) | {
            "PYTHONPATH": str(REPO),
            "MASKWATCH_KAFKA_BOOTSTRAP_SERVERS": self.kafka.bootstrap_servers,
            "MASKWATCH_KAFKA_MAX_FRAME_BYTES": str(MAX_FRAME_BYTES),
            "MASKWATCH_DETECTOR_GROUP_ID": DETECTOR_GROUP,
            "MASKWATCH_DETECTOR_MODEL_SERVER": f"127.0.0.1:{grpc}",
            "MASKWATCH_DETECTOR_KNOWN_CAMERAS": json.dumps([*cameras, HOSTILE_CAMERA]),
            # as the README's soak ran
            "MASKWATCH_DETECTOR_DETECTOR__BACKEND": "retinaface-mobilenet",
            "MASKWATCH_DETECTOR_DETECTOR__MODEL_PATH": str(
                SHARED / "models" / "retinaface_mnet025.onnx"
            ),
            # Frames wait longer in the crop batcher, so rebalances catch some in it.
            "MASKWATCH_DETECTOR_MAX_BATCH_WAIT_MS": "500",
            # A hostile frame that waited out an outage must still be judged, not skipped
            # as too old (the age check comes before the payload checks).
            "MASKWATCH_DETECTOR_MAX_AGE_S": "3600",
            "MASKWATCH_AGGREGATOR_GROUP_ID": AGGREGATOR_GROUP,
            "MASKWATCH_AGGREGATOR_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
            "MASKWATCH_AGGREGATOR_MAX_FACES": str(MAX_FACES),
            "MASKWATCH_AGGREGATOR_MAX_RESULT_BYTES": str(MAX_RESULT_BYTES),
        }
        for path in (STATE / "logs").glob("*.log"):
            path.unlink()
        (STATE / "logs").mkdir(parents=True, exist_ok=True)
        self.children = Children(STATE / "logs", env)
        self.started = time.monotonic()
        self.events: list[str] = []
        self.faults: Counter[str] = Counter()
        self.fault_errors: list[str] = []
        self.unexpected_exits: list[str] = []
        self.killed: set[int] = set()
        self.rss: dict[str, list[tuple[float, float]]] = {}
        self._stop = threading.Event()
        self._lock = threading.Lock()

    def elapsed_s(self) -> float:
        return time.monotonic() - self.started

    def log(self, text: str) -> None:
        line = f"[{self.elapsed_s():7.1f} s] {text}"
        self.events.append(line)
        click.echo(line)

    # ---------------------------------------------------------------- stack

    def stack(self, action: str, *extra: str) -> None:
        done = subprocess.run(
            [*maskwatch_argv(), "stack", action, *extra],
            env=self.stack_env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        if done.returncode != 0:
            raise click.ClickException(f"stack {action} failed:\n{done.stdout}\n{done.stderr}")

    def serve_up(self, timeout_s: float = 900.0) -> None:
        """Start the model server on the checkout's exported classifier and wait until it is
        ready. Not `stack up`: that first runs `maskwatch export --if-changed`, which on a
        busy 2-core machine takes over 10 minutes whenever the export's inputs moved."""
        home = STATE / "stack" / "serve"
        spawn(
            [
                *maskwatch_argv(),
                "serve",
                "--model-base",
                str(REPO / "var" / "models"),
                "--port",
                str(self.grpc_port),
                "--runtime-health-port",
                str(self.serve_health_port),
            ],
            home / "serve.log",
            home / "serve.pid",
            REPO,
        )
        deadline = time.monotonic() + timeout_s
        url = f"http://127.0.0.1:{self.serve_health_port}/readyz"
        while time.monotonic() < deadline:
            if port_open(self.grpc_port):
                with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as r:
                    if r.status == 200:
                        return
            time.sleep(2)
        raise click.ClickException(f"model server not ready after {timeout_s:.0f} s")

    def stop_service(self, name: str) -> None:
        pid = stack_pids(STATE / "stack").get(name)
        if pid is None:
            raise click.ClickException(f"no pid file for {name}")
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
        with contextlib.suppress(psutil.Error):
            psutil.Process(pid).wait(90)

    # ---------------------------------------------------------------- stages

    def start(self, name: str) -> Child:
        return self.children.start(
            name,
            STAGES[name],
            [STAGES[name]],
            {"MASKWATCH_DETECTOR_WORKER_ID": f"soak-{name}-{int(time.time())}"},
        )

    def supervise(self) -> None:
        """Restart any stage that exited (1 s later), like a Deployment would."""
        while not self._stop.wait(1.0):
            with self._lock:
                for child in self.children.dead():
                    self.children.started.remove(child)
                    if child.process.pid not in self.killed:
                        self.unexpected_exits.append(
                            f"{child.name} exited {child.process.returncode}; "
                            f"log {child.log}:\n{child.tail(8)}"
                        )
                        code = child.process.returncode
                        self.log(f"supervisor: {child.name} exited by itself ({code})")
                    self.start(child.name)
                    self.log(f"supervisor: restarted {child.name}")

    def kill9(self, name: str) -> None:
        with self._lock:
            child = next(c for c in self.children.started if c.name == name)
            self.killed.add(child.process.pid)
            child.process.send_signal(signal.SIGKILL)
        self.log(f"fault: kill -9 {name} (pid {child.process.pid})")

    def pids(self) -> dict[str, int]:
        with self._lock:
            own = {c.name: c.process.pid for c in self.children.started}
        return own | stack_pids(STATE / "stack")

    def sample_rss(self) -> None:
        while not self._stop.wait(5.0):
            now = self.elapsed_s()
            for name, pid in self.pids().items():
                with contextlib.suppress(psutil.Error):
                    rss = psutil.Process(pid).memory_info().rss / 2**20
                    self.rss.setdefault(f"{name}:{pid}", []).append((round(now, 1), round(rss, 1)))

    def background(self, work: Callable[[], None]) -> threading.Thread:
        thread = threading.Thread(target=work, daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            self.children.stop_all(30)
