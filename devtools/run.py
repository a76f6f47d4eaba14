"""`maskwatch run`: the whole pipeline on this machine, on sample cameras, as real processes.

The local stack (Kafka, Redis, model server: `maskwatch stack up`) must be running. This
command starts the stages exactly as a deployment runs them, one process each: producer(s)
reading the cameras file, detector worker(s) in one consumer group, the aggregator and the
API with its dashboard. It waits until the first frame is counted in Redis, prints the
dashboard URL and a per-camera summary as it goes, and after `--duration-s` stops everything
in pipeline order: producers first, then it lets the detectors and the aggregator drain what
is already in Kafka (so the final table adds up), then SIGTERM to the rest (SIGKILL only
after a grace period). SIGINT / SIGTERM to this command take the same path. Children run in
their own sessions so a Ctrl-C in the terminal reaches only this process, which stops them
in order instead of all at once.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import click
import redis
from kafka import KafkaAdminClient, KafkaConsumer
from pydantic import Field
from pydantic_settings import SettingsConfigDict

from devtools.diagnosis import LogWatch, likely_cause
from devtools.probes import (
    camera_counters,
    group_lag,
    kafka_probe,
    records_in,
    since,
    summary_table,
)
from devtools.processes import maskwatch_argv
from runtime.kafka import KafkaSettings
from runtime.settings import ServiceSettings, load_settings, settings_options
from schemas.redis_state import Counters, Keys
from workers.aggregator.settings import AggregatorSettings
from workers.detector.settings import DetectorSettings

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CAMERAS = REPO_ROOT / "deploy" / "local" / "cameras.example.yaml"
STOP_ORDER = ("producer", "detector", "aggregator", "api")


# ---------------------------------------------------------------- child processes


@dataclass
class Child:
    """One stage process and the file its output goes to."""

    name: str
    role: str
    process: subprocess.Popen[bytes]
    log: Path

    def tail(self, lines: int = 15) -> str:
        text = self.log.read_text(errors="replace").splitlines()[-lines:]
        return "\n".join(f"    {line}" for line in text)


@dataclass
class Children:
    """The stage processes of one run, started and stopped in pipeline order."""

    log_dir: Path
    env: dict[str, str]
    started: list[Child] = field(default_factory=list)
    stopped_roles: set[str] = field(default_factory=set)
    watch: LogWatch = field(default_factory=LogWatch)
    """What the stages have reported so far (see `devtools.diagnosis`)."""

    def start(self, name: str, role: str, args: list[str], env: dict[str, str]) -> Child:
        log = self.log_dir / f"{name}.log"
        with log.open("ab") as out:
            process = subprocess.Popen(
                [*maskwatch_argv(), *args],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=REPO_ROOT,
                env={**self.env, **env},
                start_new_session=True,
            )
        child = Child(name, role, process, log)
        self.started.append(child)
        return child

    def dead(self) -> list[Child]:
        """Processes that exited without being asked to."""
        return [
            c
            for c in self.started
            if c.role not in self.stopped_roles and c.process.poll() is not None
        ]

    def of(self, role: str) -> list[Child]:
        return [c for c in self.started if c.role == role]

    def stop(self, role: str, grace_s: float) -> None:
        """SIGTERM every process of `role`, wait up to `grace_s`, then SIGKILL the rest."""
        self.stopped_roles.add(role)
        group = [c for c in self.of(role) if c.process.poll() is None]
        for child in group:
            with contextlib.suppress(ProcessLookupError):
                child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for child in group:
            try:
                child.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                click.echo(f"{child.name}: no exit {grace_s:.0f} s after SIGTERM, killing")
                child.process.kill()
                child.process.wait()

    def stop_all(self, grace_s: float) -> None:
        for role in STOP_ORDER:
            self.stop(role, grace_s)


# ---------------------------------------------------------------- the run


class RunSettings(ServiceSettings):
    """`maskwatch run` options (env prefix MASKWATCH_RUN_)."""

    model_config = SettingsConfigDict(env_prefix="MASKWATCH_RUN_")

    cameras: Path = Field(DEFAULT_CAMERAS, description="cameras.yaml the producers read.")
    duration_s: float = Field(
        60.0,
        ge=0,
        le=86400,
        description="Seconds of streaming after frames flow (0: until Ctrl-C).",
    )
    detectors: int = Field(1, ge=1, le=16, description="Detector worker processes (one group).")
    producers: int = Field(1, ge=1, le=16, description="Producer replicas sharing the cameras.")
    api_port: int = Field(8080, ge=1, le=65535, description="Port of the API and dashboard.")
    key_prefix: str = Field(
        default_factory=lambda: AggregatorSettings().key_prefix,
        description="Redis key prefix of aggregator and API (default: the aggregator's).",
    )
    log_dir: Path = Field(
        default_factory=lambda: REPO_ROOT / "var" / "run" / time.strftime("%Y%m%d-%H%M%S"),
        description="Where the stages' logs go (default: var/run/<time>).",
    )
    start_timeout_s: float = Field(
        120.0,
        ge=5,
        le=3600,
        description="Stop with the likely cause if no frame is counted this long after start.",
    )
    drain_timeout_s: float = Field(
        120.0, ge=0, le=3600, description="After the producers stop, wait this long for Kafka."
    )
    report_every_s: float = Field(20.0, ge=1, le=3600, description="Print the table this often.")
    grace_s: float = Field(30.0, ge=1, le=300, description="Seconds from SIGTERM to SIGKILL.")


class Stop:
    """SIGINT / SIGTERM → an Event the run loop waits on (the children are stopped in order)."""

    def __init__(self) -> None:
        self.event = threading.Event()

    def install(self) -> None:
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        click.echo(f"\n{signal.Signals(signum).name}: stopping the pipeline")
        self.event.set()


def child_env(key_prefix: str, api_port: int) -> dict[str, str]:
    """Environment of every stage: this one's, plus what this run decides (the rest stays
    settable by the caller, e.g. MASKWATCH_KAFKA_* topics or the detector's settings)."""
    env = dict(os.environ)
    defaults = {
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "MASKWATCH_PRODUCER_RUNTIME__HEALTH_PORT": "0",
        "MASKWATCH_DETECTOR_RUNTIME__HEALTH_PORT": "0",
        "MASKWATCH_AGGREGATOR_RUNTIME__HEALTH_PORT": "0",
        "MASKWATCH_API_RUNTIME__HEALTH_PORT": "0",
        # camera health to the same Redis, so the dashboard shows every configured camera
        "MASKWATCH_PRODUCER_HEALTH__ENABLED": "true",
    }
    for name, value in defaults.items():
        env.setdefault(name, value)
    env |= {
        "MASKWATCH_AGGREGATOR_KEY_PREFIX": key_prefix,
        "MASKWATCH_API_KEY_PREFIX": key_prefix,
        "MASKWATCH_PRODUCER_HEALTH__KEY_PREFIX": key_prefix,
        "MASKWATCH_API_HOST": "127.0.0.1",
        "MASKWATCH_API_PORT": str(api_port),
    }
    return env


def start_stages(children: Children, options: RunSettings) -> None:
    children.start("aggregator", "aggregator", ["aggregator"], {})
    children.start("api", "api", ["api"], {})
    for i in range(options.detectors):
        children.start(
            f"detector-{i}",
            "detector",
            ["detector"],
            {"MASKWATCH_DETECTOR_WORKER_ID": f"run-detector-{i}-{os.getpid()}"},
        )
    for i in range(options.producers):
        children.start(
            f"producer-{i}",
            "producer",
            ["producer"],
            {
                "MASKWATCH_PRODUCER_CONFIG": str(options.cameras.resolve()),
                "MASKWATCH_PRODUCER_REPLICA_COUNT": str(options.producers),
                "MASKWATCH_PRODUCER_REPLICA_INDEX": str(i),
            },
        )


def report_problems(children: Children, watch: LogWatch) -> None:
    """Print, once each, the problems the stages have logged since the last call."""
    logs = [(c.role, c.name, c.log) for c in children.started]
    for problem in watch.new_problems(logs):
        click.echo(f"problem: {problem.line()}", err=True)


def wait_for_first_count(
    children: Children,
    client: redis.Redis,
    keys: Keys,
    before: dict[str, Counters],
    options: RunSettings,
    kafka: KafkaSettings,
    stop: threading.Event,
) -> None:
    """Return once a frame of this run is counted; on the way, print each problem a stage
    logs (a camera that cannot open, a detector not ready); after `start_timeout_s` with
    nothing counted, fail with the likely cause and where the logs are."""
    started = time.monotonic()
    with kafka_probe(kafka) as (_, consumer):
        frames_before = records_in(consumer, kafka.frames_topic)
        results_before = records_in(consumer, kafka.results_topic)
        while not since(camera_counters(client, keys), before):
            fail_if_dead(children)
            report_problems(children, children.watch)
            if time.monotonic() - started > options.start_timeout_s:
                cause = likely_cause(
                    children.watch.seen,
                    records_in(consumer, kafka.frames_topic) - frames_before,
                    records_in(consumer, kafka.results_topic) - results_before,
                )
                raise click.ClickException(
                    f"no frame counted {options.start_timeout_s:.0f} s after start. "
                    f"Likely cause: {cause}. Logs: {options.log_dir}"
                )
            if stop.wait(1.0):
                return


def fail_if_dead(children: Children) -> None:
    dead = children.dead()
    if dead:
        report = "\n".join(
            f"  {c.name} exited with {c.process.returncode}; last lines of {c.log}:\n{c.tail()}"
            for c in dead
        )
        raise click.ClickException(f"a stage stopped on its own:\n{report}")


def run_pipeline(options: RunSettings, stop: threading.Event) -> dict[str, Counters]:
    """Start, report, stop and drain; returns this run's per-camera counts."""
    kafka = load_settings(KafkaSettings, {})
    detector_group = DetectorSettings().group_id
    keys = Keys(options.key_prefix)
    aggregator = AggregatorSettings()
    aggregator_group = aggregator.group_id
    client = redis.Redis.from_url(
        aggregator.redis_url, decode_responses=True, socket_timeout=10, **aggregator.redis_options()
    )
    before = camera_counters(client, keys)
    options.log_dir.mkdir(parents=True, exist_ok=True)
    children = Children(options.log_dir, child_env(options.key_prefix, options.api_port))
    started = time.monotonic()
    try:
        start_stages(children, options)
        click.echo(
            f"run: {options.producers} producer(s), {options.detectors} detector(s), "
            f"aggregator, API; logs in {options.log_dir}"
        )
        wait_for_first_count(children, client, keys, before, options, kafka, stop)
        flowing = time.monotonic()
        click.echo(f"run: frames flowing after {flowing - started:.1f} s")
        click.echo(f"dashboard: http://127.0.0.1:{options.api_port}/")
        click.echo(f"API:       http://127.0.0.1:{options.api_port}/api/v1/cameras")
        click.echo(summary_table(since(camera_counters(client, keys), before)))
        watch = children.watch
        with kafka_probe(kafka) as (admin, consumer):
            next_report = flowing + options.report_every_s
            while not stop.is_set():
                now = time.monotonic()
                if options.duration_s and now - flowing >= options.duration_s:
                    break
                fail_if_dead(children)
                report_problems(children, watch)
                if now >= next_report:
                    lag = group_lag(admin, consumer, detector_group, kafka.frames_topic)
                    click.echo(f"\n[{now - flowing:.0f} s] frames waiting for a detector: {lag}")
                    click.echo(summary_table(since(camera_counters(client, keys), before)))
                    next_report = now + options.report_every_s
                stop.wait(min(1.0, max(0.1, next_report - now)))
            click.echo("\nrun: stopping producers, draining what is already in Kafka")
            children.stop("producer", options.grace_s)
            drained = drain(
                admin,
                consumer,
                kafka,
                (detector_group, aggregator_group),
                options.drain_timeout_s,
                stop,
                children,
            )
            if drained:
                click.echo("run: drained")
            elif stop.is_set():
                click.echo("run: interrupted, not waiting for Kafka to drain")
            else:
                click.echo(f"run: not drained after {options.drain_timeout_s:.0f} s")
    finally:
        children.stop_all(options.grace_s)
        click.echo("run: all stages stopped")
    counts = since(camera_counters(client, keys), before)
    client.close()
    return counts


def drain(
    admin: KafkaAdminClient,
    consumer: KafkaConsumer,
    kafka: KafkaSettings,
    groups: tuple[str, str],
    timeout_s: float,
    stop: threading.Event,
    children: Children,
) -> bool:
    """Wait until the detectors have committed every frame and the aggregator every result."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not stop.is_set():
        fail_if_dead(children)
        lags = (
            group_lag(admin, consumer, groups[0], kafka.frames_topic),
            group_lag(admin, consumer, groups[1], kafka.results_topic),
        )
        if lags == (0, 0):
            return True
        stop.wait(1.0)
    return False


@click.command("run")
@settings_options(RunSettings)
def cli(**values: object) -> None:
    """Run the whole pipeline locally on sample cameras (needs `maskwatch stack up`)."""
    from devtools.stack import stack_status
    from devtools.stack_settings import StackSettings

    options = load_settings(RunSettings, values)
    if not options.cameras.is_file():
        raise click.BadParameter(f"{options.cameras} is not a file", param_hint="--cameras")
    if not stack_status(StackSettings()).up:
        raise click.ClickException("the local stack is not up: run `maskwatch stack up`")
    stop = Stop()
    stop.install()
    counts = run_pipeline(options, stop.event)
    click.echo(f"\nsummary of this run (Redis key prefix {options.key_prefix!r}):")
    click.echo(summary_table(counts))
