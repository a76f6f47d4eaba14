"""The local stack's model server: export the shipped classifier when it changed, then run
`maskwatch serve` on it (gRPC on the stack's port, health on its own)."""

from __future__ import annotations

import subprocess
import urllib.request
from pathlib import Path

import click

from devtools.processes import (
    HOST,
    log_tail,
    maskwatch_argv,
    port_open,
    read_pid,
    spawn,
    wait_healthy,
)
from devtools.stack_settings import REPO_ROOT, StackSettings
from schemas.model_server import MODEL_NAME


def serve_healthy(settings: StackSettings) -> bool:
    if not port_open(settings.grpc_port):
        return False
    url = f"http://{HOST}:{settings.serve_health_port}/readyz"
    try:
        with urllib.request.urlopen(url, timeout=2.0) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def has_version(model_base: Path) -> bool:
    """Whether `model_base` holds an exported version of the classifier."""
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
            [*maskwatch_argv(), "export", "--if-changed", "--model-base", str(settings.model_base)],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=REPO_ROOT,
            timeout=settings.serve_timeout_s,
            check=False,
        )
    if done.returncode != 0 or not has_version(settings.model_base):
        raise click.ClickException(
            f"`maskwatch export` failed (exit {done.returncode}) or wrote no version under "
            f"{settings.model_base / MODEL_NAME}{log_tail(home / 'export.log')}"
        )
    if serve_healthy(settings):
        click.echo(f"model server: running, gRPC on {HOST}:{settings.grpc_port}")
        return
    pidfile, log = home / "serve.pid", home / "serve.log"
    pid = read_pid(pidfile)
    if pid is None:
        pid = spawn(
            [
                *maskwatch_argv(),
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
    wait_healthy(
        "model server", lambda: serve_healthy(settings), settings.serve_timeout_s, pid, log
    )
    click.echo(f"model server: healthy, gRPC on {HOST}:{settings.grpc_port}")
