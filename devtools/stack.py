"""`maskwatch stack up|down|status`: the local stack (Kafka, Redis, model server) on loopback.

Everything a developer, a test run or the demo needs runs as plain processes of this machine
(no containers here): Apache Kafka 4.x in KRaft mode from the jars `deploy/local/install.sh`
fetched from Maven Central, Debian's `redis-server`, and `maskwatch serve` when the serving
package is present. State, data, pid files and logs live under `var/stack/` so `down` can
stop exactly what `up` started and nothing else. `up` is idempotent: services already
answering are left alone, so a second `up` returns in about a second.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import os
import shutil
import signal
import socket
import string
import subprocess
import sys
import time
import urllib.request
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
from pydantic import Field
from pydantic_settings import SettingsConfigDict

from runtime.kafka import KafkaSettings, broker_info, create_topics
from runtime.logs import configure_logging
from runtime.settings import ServiceSettings, load_settings, settings_options
from schemas.model_server import MODEL_NAME

REPO_ROOT = Path(__file__).resolve().parents[1]
LOCAL_DIR = REPO_ROOT / "deploy" / "local"
HOST = "127.0.0.1"


class StackSettings(ServiceSettings):
    """Where the local stack keeps its state and which ports it uses (env MASKWATCH_STACK_)."""

    model_config = SettingsConfigDict(env_prefix="MASKWATCH_STACK_")

    state_dir: Path = Field(
        REPO_ROOT / "var" / "stack", description="Data, pid files and logs of the local services."
    )
    kafka_libs: Path | None = Field(
        None, description="Folder of the Kafka jars (default: the cache install.sh fills)."
    )
    kafka_heap_mb: int = Field(1024, ge=256, le=8192, description="Kafka JVM heap (MiB).")
    kafka_port: int = Field(9092, ge=1, le=65535, description="Kafka client port.")
    controller_port: int = Field(9093, ge=1, le=65535, description="KRaft controller port.")
    redis_port: int = Field(6379, ge=1, le=65535, description="Redis port.")
    model_server: bool = Field(True, description="Also export and serve the shipped classifier.")
    model_base: Path = Field(
        REPO_ROOT / "var" / "models", description="Model base folder of the model server."
    )
    grpc_port: int = Field(8500, ge=1, le=65535, description="Model server gRPC port.")
    serve_runtime: str = Field(
        "auto",
        pattern="^(auto|tensorflow|openvino-(fp32|bf16|int8))$",
        description="Model server runtime; auto: the fastest variant that passed export's gate.",
    )
    serve_health_port: int = Field(9100, ge=1, le=65535, description="Model server health port.")
    start_timeout_s: float = Field(
        120.0, ge=5, le=1800, description="How long to wait for Kafka or Redis to be healthy."
    )
    serve_timeout_s: float = Field(
        600.0, ge=5, le=3600, description="How long to wait for export and model server."
    )


# ---------------------------------------------------------------- processes and probes


def _alive(pid: int) -> bool:
    """True for a running process (a zombie awaiting its parent counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    return True


def _read_pid(pidfile: Path) -> int | None:
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if _alive(pid) else None


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((HOST, port)) == 0


def _wait(
    what: str,
    check: Callable[[], bool],
    timeout_s: float,
    pid: int | None = None,
    log: Path | None = None,
) -> None:
    """Poll `check` until true; fail early (with the log's tail) if the process died."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        if pid is not None and not _alive(pid):
            raise click.ClickException(f"{what} exited while starting{_tail(log)}")
        time.sleep(0.5)
    raise click.ClickException(f"{what} not healthy after {timeout_s:.0f} s{_tail(log)}")


def _tail(log: Path | None, lines: int = 25) -> str:
    if log is None or not log.exists():
        return ""
    text = log.read_text(errors="replace").splitlines()[-lines:]
    return f"; last lines of {log}:\n" + "\n".join(text)


def _spawn(argv: list[str], log: Path, pidfile: Path, cwd: Path) -> int:
    """Start a detached process (own session, so `down` can signal its whole group)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        process = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=cwd,
            start_new_session=True,
        )
    pidfile.write_text(f"{process.pid}\n")
    return process.pid


def _stop(name: str, pidfile: Path, timeout_s: float, group: bool) -> None:
    """SIGTERM (then SIGKILL after `timeout_s`) the process in `pidfile` and its group."""
    pid = _read_pid(pidfile)
    if pid is None:
        pidfile.unlink(missing_ok=True)
        click.echo(f"{name}: not running")
        return

    def send(sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            if group:
                os.killpg(pid, sig)
            else:
                os.kill(pid, sig)

    send(signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if _alive(pid):
        click.echo(f"{name}: did not stop in {timeout_s:.0f} s, killing")
        send(signal.SIGKILL)
        while _alive(pid):
            time.sleep(0.1)
    # Dead is not gone: wait (briefly) for the parent, usually init, to reap the zombie.
    deadline = time.monotonic() + 5
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    pidfile.unlink(missing_ok=True)
    click.echo(f"{name}: stopped (pid {pid})")


@contextlib.contextmanager
def _locked(state_dir: Path) -> Iterator[None]:
    """One `up`/`down` at a time: parallel test runs share one stack instead of racing."""
    state_dir.mkdir(parents=True, exist_ok=True)
    with (state_dir / "stack.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


# ---------------------------------------------------------------- Kafka


def kafka_version() -> str:
    """The Kafka version pinned in deploy/local/pom.xml (the one place it is written)."""
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    version = ET.parse(LOCAL_DIR / "pom.xml").find("m:properties/m:kafka.version", ns)
    if version is None or not version.text:
        raise click.ClickException("deploy/local/pom.xml has no kafka.version property")
    return version.text.strip()


def kafka_libs(settings: StackSettings) -> Path:
    if settings.kafka_libs is not None:
        return settings.kafka_libs
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return cache / "maskwatch" / f"kafka-{kafka_version()}" / "libs"


def _kafka_settings(settings: StackSettings) -> KafkaSettings:
    return KafkaSettings(bootstrap_servers=f"{HOST}:{settings.kafka_port}")


def kafka_healthy(settings: StackSettings) -> str | None:
    """'<version>' if the admin API reports an unfenced broker, else None."""
    if not _port_open(settings.kafka_port):
        return None
    try:
        info = broker_info(_kafka_settings(settings), timeout_ms=3_000)
    except Exception:
        return None
    return ".".join(map(str, info.version)) if info.broker_ids else None


def _cluster_id() -> str:
    """A KRaft cluster id: a random UUID as 22 URL-safe base64 characters."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


def kafka_up(settings: StackSettings) -> None:
    home = settings.state_dir / "kafka"
    pidfile, log = home / "kafka.pid", home / "kafka.log"
    version = kafka_healthy(settings)
    if version:
        click.echo(f"kafka: running, broker {version} on {HOST}:{settings.kafka_port}")
        return
    pid = _read_pid(pidfile)
    if pid is None:
        for port in (settings.kafka_port, settings.controller_port):
            if _port_open(port):
                raise click.ClickException(
                    f"port {port} is taken by a process this stack did not start"
                )
        libs = kafka_libs(settings)
        if not (libs / ".complete").exists():
            raise click.ClickException(
                f"no Kafka jars in {libs}: run `bash deploy/local/install.sh`"
            )
        home.mkdir(parents=True, exist_ok=True)
        config = home / "server.properties"
        template = string.Template((LOCAL_DIR / "kafka.properties").read_text())
        config.write_text(
            template.substitute(
                host=HOST,
                kafka_port=settings.kafka_port,
                controller_port=settings.controller_port,
                data_dir=home / "data",
            )
        )
        java = [
            "java",
            f"-Xms{settings.kafka_heap_mb}m",
            f"-Xmx{settings.kafka_heap_mb}m",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={LOCAL_DIR / 'log4j2.properties'}",
            "-cp",
            f"{libs}/*",
        ]
        if not (home / "data" / "meta.properties").exists():
            click.echo("kafka: formatting KRaft storage")
            subprocess.run(
                [
                    *java,
                    "kafka.tools.StorageTool",
                    "format",
                    "--standalone",
                    "-t",
                    _cluster_id(),
                    "-c",
                    str(config),
                ],
                check=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                cwd=home,
            )
        pid = _spawn([*java, "kafka.Kafka", str(config)], log, pidfile, home)
        click.echo(f"kafka: started (pid {pid}, log {log})")
    _wait("kafka", lambda: kafka_healthy(settings) is not None, settings.start_timeout_s, pid, log)
    click.echo(f"kafka: healthy, broker {kafka_healthy(settings)} on {HOST}:{settings.kafka_port}")


# ---------------------------------------------------------------- Redis


def redis_healthy(settings: StackSettings) -> bool:
    """PING over RESP (no client library needed to tell that Redis answers)."""
    try:
        with socket.create_connection((HOST, settings.redis_port), timeout=1.0) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def redis_up(settings: StackSettings) -> None:
    home = settings.state_dir / "redis"
    if redis_healthy(settings):
        click.echo(f"redis: running on {HOST}:{settings.redis_port}")
        return
    server = shutil.which("redis-server")
    if server is None:
        raise click.ClickException("redis-server not found: run `bash deploy/local/install.sh`")
    if _port_open(settings.redis_port):
        raise click.ClickException(f"port {settings.redis_port} is taken by a non-Redis process")
    home.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            server,
            "--bind",
            HOST,
            "--port",
            str(settings.redis_port),
            "--daemonize",
            "yes",
            "--pidfile",
            str(home / "redis.pid"),
            "--logfile",
            str(home / "redis.log"),
            "--dir",
            str(home),
            "--save",
            "",
            "--appendonly",
            "no",
            "--maxmemory-policy",
            "noeviction",  # as in the chart: correctness keys are never evicted
            "--protected-mode",
            "yes",
        ],
        check=True,
    )
    _wait(
        "redis", lambda: redis_healthy(settings), settings.start_timeout_s, None, home / "redis.log"
    )
    click.echo(
        f"redis: healthy on {HOST}:{settings.redis_port} (pid {_read_pid(home / 'redis.pid')})"
    )


# ---------------------------------------------------------------- model server


def _maskwatch() -> list[str]:
    """How to run this same `maskwatch` (the venv's script, or the module as a fallback)."""
    script = Path(sys.executable).with_name("maskwatch")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from workers.cli import main; main()"]


def serve_healthy(settings: StackSettings) -> bool:
    if not _port_open(settings.grpc_port):
        return False
    url = f"http://{HOST}:{settings.serve_health_port}/readyz"
    try:
        with urllib.request.urlopen(url, timeout=2.0) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def _has_version(model_base: Path) -> bool:
    folder = model_base / MODEL_NAME
    return folder.is_dir() and any(p.is_dir() and p.name.isdigit() for p in folder.iterdir())


def serve_up(settings: StackSettings) -> None:
    """Export the shipped classifier when its weights changed (a new version, which a running
    server picks up by itself), then start the model server unless it already answers."""
    if not settings.model_server:
        click.echo("model server: skipped (--no-model-server)")
        return
    home = settings.state_dir / "serve"
    home.mkdir(parents=True, exist_ok=True)
    click.echo(
        f"model server: exporting the shipped classifier if changed (log {home / 'export.log'})"
    )
    with (home / "export.log").open("ab") as out:
        done = subprocess.run(
            [*_maskwatch(), "export", "--if-changed", "--model-base", str(settings.model_base)],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=REPO_ROOT,
            timeout=settings.serve_timeout_s,
            check=False,
        )
    if done.returncode != 0 or not _has_version(settings.model_base):
        raise click.ClickException(
            f"`maskwatch export` failed (exit {done.returncode}) or wrote no version under "
            f"{settings.model_base / MODEL_NAME}{_tail(home / 'export.log')}"
        )
    if serve_healthy(settings):
        click.echo(f"model server: running, gRPC on {HOST}:{settings.grpc_port}")
        return
    pidfile, log = home / "serve.pid", home / "serve.log"
    pid = _read_pid(pidfile)
    if pid is None:
        pid = _spawn(
            [
                *_maskwatch(),
                "serve",
                "--model-base",
                str(settings.model_base),
                "--port",
                str(settings.grpc_port),
                "--runtime-health-port",
                str(settings.serve_health_port),
                "--inference-runtime",
                settings.serve_runtime,
            ],
            log,
            pidfile,
            REPO_ROOT,
        )
        click.echo(f"model server: started (pid {pid}, log {log})")
    _wait("model server", lambda: serve_healthy(settings), settings.serve_timeout_s, pid, log)
    click.echo(f"model server: healthy, gRPC on {HOST}:{settings.grpc_port}")


# ---------------------------------------------------------------- commands


@dataclass(frozen=True)
class Status:
    kafka: str | None
    redis: bool
    serve: bool
    serve_expected: bool

    @property
    def up(self) -> bool:
        return bool(self.kafka) and self.redis and (self.serve or not self.serve_expected)


def stack_status(settings: StackSettings) -> Status:
    return Status(
        kafka_healthy(settings),
        redis_healthy(settings),
        serve_healthy(settings),
        settings.model_server,
    )


@click.group("stack")
def cli() -> None:
    """Bring the local stack (Kafka, Redis, model server) up or down."""
    configure_logging("WARNING", json_output=False)


@cli.command("up")
@settings_options(StackSettings)
def up(**values: Any) -> None:
    """Start Kafka, Redis and the model server, wait until healthy, create the topics."""
    settings = load_settings(StackSettings, values)
    started = time.monotonic()
    with _locked(settings.state_dir):
        kafka_up(settings)
        redis_up(settings)
        outcome = create_topics(_kafka_settings(settings))
        click.echo("topics: " + ", ".join(f"{t} {o}" for t, o in outcome.items()))
        serve_up(settings)
    click.echo(f"stack: up in {time.monotonic() - started:.1f} s")


@cli.command("down")
@settings_options(StackSettings)
@click.option(
    "--wipe",
    is_flag=True,
    envvar="MASKWATCH_STACK_WIPE",
    help="Also delete Kafka's data and the logs under the state dir. "
    "[env: MASKWATCH_STACK_WIPE; default: False]",
)
def down(wipe: bool, **values: Any) -> None:
    """Stop what `up` started (model server, Kafka, Redis) and check nothing is left."""
    settings = load_settings(StackSettings, values)
    home = settings.state_dir
    with _locked(home):
        _stop("model server", home / "serve" / "serve.pid", 30, group=True)
        _stop("kafka", home / "kafka" / "kafka.pid", 60, group=True)
        _stop("redis", home / "redis" / "redis.pid", 30, group=False)
        if wipe:
            for sub in ("kafka", "redis", "serve"):
                shutil.rmtree(home / sub, ignore_errors=True)
    ports = (
        settings.kafka_port,
        settings.controller_port,
        settings.redis_port,
        settings.grpc_port,
        settings.serve_health_port,
    )
    left = [p for p in ports if _port_open(p)]
    if left:
        raise click.ClickException(f"still answering on {left}: processes this stack did not start")
    click.echo("stack: down")


@cli.command("status")
@settings_options(StackSettings)
@click.option(
    "--quiet",
    "-q",
    is_flag=True,
    envvar="MASKWATCH_STACK_QUIET",
    help="Print nothing; exit 0 only if all is up. [env: MASKWATCH_STACK_QUIET; default: False]",
)
def status(quiet: bool, **values: Any) -> None:
    """Tell what answers; exit 1 unless Kafka, Redis (and the model server if present) do."""
    settings = load_settings(StackSettings, values)
    state = stack_status(settings)
    if not quiet:
        click.echo(f"kafka: {'broker ' + state.kafka if state.kafka else 'down'}")
        click.echo(f"redis: {'up' if state.redis else 'down'}")
        serve = "up" if state.serve else ("down" if state.serve_expected else "not installed")
        click.echo(f"model server: {serve}")
    sys.exit(0 if state.up else 1)
