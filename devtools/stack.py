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
import os
import shutil
import socket
import string
import subprocess
import sys
import time
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from devtools.processes import (
    HOST,
    locked,
    port_open,
    read_pid,
    spawn,
    stop,
    wait_healthy,
)
from devtools.stack_security import (
    SCRAM_USER,
    StackTls,
    ensure_tls,
    redis_tls_config,
    sasl_listener_config,
    scram_format_args,
)
from devtools.stack_serve import serve_healthy, serve_up
from devtools.stack_settings import REPO_ROOT, StackSettings
from runtime.kafka import KafkaSettings, broker_info, create_topics
from runtime.kafka_security import KafkaSecurity
from runtime.logs import configure_logging
from runtime.settings import load_settings, settings_options

LOCAL_DIR = REPO_ROOT / "deploy" / "local"


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
    """The stack's own plaintext port, whatever MASKWATCH_KAFKA_SECURITY__* the caller's
    environment sets for the services (they may use the SASL_SSL listener)."""
    return KafkaSettings(
        bootstrap_servers=f"{HOST}:{settings.kafka_port}", security=KafkaSecurity()
    )


def kafka_healthy(settings: StackSettings) -> str | None:
    """'<version>' if the admin API reports an unfenced broker, else None."""
    if not port_open(settings.kafka_port):
        return None
    try:
        info = broker_info(_kafka_settings(settings), timeout_ms=3_000)
    except Exception:
        return None
    return ".".join(map(str, info.version)) if info.broker_ids else None


def stack_tls(settings: StackSettings) -> StackTls:
    """The stack's certificates and generated passwords (made on first use, then cached)."""
    return ensure_tls(settings.state_dir / "tls")


def _kafka_config(settings: StackSettings, home: Path) -> str:
    """server.properties: the plaintext template, plus the SASL_SSL listener if asked for."""
    values: dict[str, object] = {
        "host": HOST,
        "kafka_port": settings.kafka_port,
        "controller_port": settings.controller_port,
        "data_dir": home / "data",
    }
    text = string.Template((LOCAL_DIR / "kafka.properties").read_text()).substitute(values)
    if settings.kafka_sasl_port is None:
        return text
    template = (LOCAL_DIR / "kafka-sasl-ssl.properties").read_text()
    return text + sasl_listener_config(
        stack_tls(settings), template, values, settings.kafka_sasl_port
    )


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
    pid = read_pid(pidfile)
    if pid is None:
        for port in (settings.kafka_port, settings.controller_port):
            if port_open(port):
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
        config.touch(mode=0o600)
        config.write_text(_kafka_config(settings, home))
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
        formatted = (home / "data" / "meta.properties").exists()
        if formatted and settings.kafka_sasl_port and not (home / "scram-user").exists():
            raise click.ClickException(
                "Kafka's storage was formatted without the SCRAM user: "
                "`maskwatch stack down --wipe`, then `up` with --kafka-sasl-port"
            )
        if not formatted:
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
                    *(scram_format_args(stack_tls(settings)) if settings.kafka_sasl_port else []),
                ],
                check=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                cwd=home,
            )
            if settings.kafka_sasl_port:
                (home / "scram-user").write_text(f"{SCRAM_USER}\n")
        pid = spawn([*java, "kafka.Kafka", str(config)], log, pidfile, home)
        click.echo(f"kafka: started (pid {pid}, log {log})")
    wait_healthy(
        "kafka", lambda: kafka_healthy(settings) is not None, settings.start_timeout_s, pid, log
    )
    click.echo(f"kafka: healthy, broker {kafka_healthy(settings)} on {HOST}:{settings.kafka_port}")
    if settings.kafka_sasl_port:
        tls = stack_tls(settings)
        click.echo(
            f"kafka: SASL_SSL on {HOST}:{settings.kafka_sasl_port}, SCRAM user {SCRAM_USER}, "
            f"password file {tls.secret('kafka-password')}, CA {tls.ca_file}"
        )


# ---------------------------------------------------------------- Redis


def redis_healthy(settings: StackSettings) -> bool:
    """PING over RESP (no client library needed to tell that Redis answers; with AUTH on,
    the refusal to answer without it is an answer too)."""
    try:
        with socket.create_connection((HOST, settings.redis_port), timeout=1.0) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith((b"+PONG", b"-NOAUTH"))
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
    if port_open(settings.redis_port):
        raise click.ClickException(f"port {settings.redis_port} is taken by a non-Redis process")
    home.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            server,
            "-",
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
        input=redis_tls_config(stack_tls(settings), settings.redis_tls_port).encode(),
        check=True,
    )
    wait_healthy(
        "redis", lambda: redis_healthy(settings), settings.start_timeout_s, None, home / "redis.log"
    )
    click.echo(
        f"redis: healthy on {HOST}:{settings.redis_port} (pid {read_pid(home / 'redis.pid')})"
    )
    if settings.redis_tls_port:
        tls = stack_tls(settings)
        click.echo(
            f"redis: TLS on {HOST}:{settings.redis_tls_port}, AUTH password file "
            f"{tls.secret('redis-password')}, CA {tls.ca_file}"
        )


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
    with locked(settings.state_dir):
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
    with locked(home):
        stop("model server", home / "serve" / "serve.pid", 30, group=True)
        stop("kafka", home / "kafka" / "kafka.pid", 60, group=True)
        stop("redis", home / "redis" / "redis.pid", 30, group=False)
        if wipe:
            for sub in ("kafka", "redis", "serve"):
                shutil.rmtree(home / sub, ignore_errors=True)
    ports = (
        settings.kafka_port,
        settings.controller_port,
        *([settings.kafka_sasl_port] if settings.kafka_sasl_port else []),
        *([settings.redis_tls_port] if settings.redis_tls_port else []),
        settings.redis_port,
        settings.grpc_port,
        settings.serve_health_port,
    )
    left = [p for p in ports if port_open(p)]
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
