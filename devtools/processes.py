"""The local stack's processes: pid files, detached start, ordered stop, health waits.

Every service of `maskwatch stack` runs as a plain process in its own session, its pid in a
file under `var/stack/`, so `down` stops exactly what `up` started (the whole process group)
and nothing else; one `up`/`down` runs at a time (a file lock).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import click

HOST = "127.0.0.1"


def alive(pid: int) -> bool:
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


def read_pid(pidfile: Path) -> int | None:
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if alive(pid) else None


def port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((HOST, port)) == 0


def wait_healthy(
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
        if pid is not None and not alive(pid):
            raise click.ClickException(f"{what} exited while starting{log_tail(log)}")
        time.sleep(0.5)
    raise click.ClickException(f"{what} not healthy after {timeout_s:.0f} s{log_tail(log)}")


def log_tail(log: Path | None, lines: int = 25) -> str:
    if log is None or not log.exists():
        return ""
    text = log.read_text(errors="replace").splitlines()[-lines:]
    return f"; last lines of {log}:\n" + "\n".join(text)


def spawn(argv: list[str], log: Path, pidfile: Path, cwd: Path) -> int:
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


def stop(name: str, pidfile: Path, timeout_s: float, group: bool) -> None:
    """SIGTERM (then SIGKILL after `timeout_s`) the process in `pidfile` and its group."""
    pid = read_pid(pidfile)
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
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if alive(pid):
        click.echo(f"{name}: did not stop in {timeout_s:.0f} s, killing")
        send(signal.SIGKILL)
        while alive(pid):
            time.sleep(0.1)
    # Dead is not gone: wait (briefly) for the parent, usually init, to reap the zombie.
    deadline = time.monotonic() + 5
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    pidfile.unlink(missing_ok=True)
    click.echo(f"{name}: stopped (pid {pid})")


@contextlib.contextmanager
def locked(state_dir: Path) -> Iterator[None]:
    """One `up`/`down` at a time: parallel test runs share one stack instead of racing."""
    state_dir.mkdir(parents=True, exist_ok=True)
    with (state_dir / "stack.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def maskwatch_argv() -> list[str]:
    """How to run this same `maskwatch` (the venv's script, or the module as a fallback)."""
    script = Path(sys.executable).with_name("maskwatch")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from workers.cli import main; main()"]
