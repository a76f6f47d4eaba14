"""No credential reaches a log line: structlog events, their fields, formatted exceptions and
stdlib loggers, as a real process writes them to stderr (the captured output is grepped)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from runtime.logs import MASK, redact_text

REPO = Path(__file__).resolve().parents[2]
SECRET = "Hunter2-s3cret"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("rtsp://cam:pw@10.0.0.7/stream", f"rtsp://cam:{MASK}@10.0.0.7/stream"),
        ("redis://:pw@cache:6379/0 and more", f"redis://:{MASK}@cache:6379/0 and more"),
        ("http://example.org/a@b", "http://example.org/a@b"),
        ("rtsp://cam@10.0.0.7/stream", "rtsp://cam@10.0.0.7/stream"),
    ],
    ids=["rtsp", "redis-no-user", "at-in-path", "user-only"],
)
def test_url_passwords_are_masked(text: str, expected: str) -> None:
    assert redact_text(text) == expected


@pytest.mark.parametrize("json_logs", [True, False], ids=["json", "console"])
def test_a_process_never_logs_a_credential(json_logs: bool) -> None:
    script = textwrap.dedent(
        f"""
        import logging
        from runtime.logs import configure_logging, get_logger
        configure_logging("DEBUG", json_output={json_logs})
        log = get_logger("test")
        url = "rtsp://admin:{SECRET}@10.0.0.7:554/stream"
        log.info("camera_opened", source=url)
        log.info(f"connecting to {{url}}")
        log.warning("login", password="{SECRET}", api_token="{SECRET}", user="admin")
        log.info("config", kafka={{"security": {{"password": "{SECRET}"}}}}, urls=[url])
        try:
            raise ConnectionError(f"cannot open {{url}}")
        except ConnectionError:
            log.exception("camera_failed")
        logging.getLogger("kafka.conn").warning("bootstrap %s failed", url)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    logged = done.stdout + done.stderr
    for event in ("camera_opened", "connecting to rtsp://admin:", "camera_failed", "bootstrap"):
        assert event in logged, f"{event} not logged:\n{logged}"
    assert "ConnectionError" in logged
    assert "admin" in logged  # user names stay: they say whose credential it was
    assert SECRET not in logged, logged
