"""Every logger of a service writes the same JSON line shape (ours, uvicorn's, kafka's)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from runtime.logs import configure_logging, get_logger


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.reset_defaults()


def test_our_and_library_loggers_share_one_json_format(
    restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    logging.getLogger("uvicorn.error").setLevel(logging.WARNING)  # as an earlier server left it
    configure_logging("INFO", json_output=True)
    get_logger("api").info("starting", port=8080)
    logging.getLogger("uvicorn.error").info("Uvicorn running on %s", "http://127.0.0.1:8080")
    logging.getLogger("kafka.conn").info("connecting")  # a noisy library: below WARNING
    logging.getLogger("kafka.conn").warning("broker %s unreachable", "127.0.0.1:9092")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logging.getLogger("grpc._channel").exception("call failed")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [line["event"] for line in lines] == [
        "starting",
        "Uvicorn running on http://127.0.0.1:8080",
        "broker 127.0.0.1:9092 unreachable",
        "call failed",
    ]
    for line in lines:
        assert {"event", "level", "timestamp"} <= set(line)
    assert lines[0]["component"] == "api" and lines[0]["port"] == 8080
    assert (lines[1]["logger"], lines[1]["level"]) == ("uvicorn.error", "info")
    assert lines[2]["level"] == "warning"
    assert "RuntimeError: boom" in lines[3]["exception"]


def test_debug_and_console_output(
    restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("DEBUG", json_output=False)
    logging.getLogger("kafka.conn").debug("sent request")
    get_logger("api").debug("details")
    err = capsys.readouterr().err
    assert "sent request" in err and "details" in err and not err.lstrip().startswith("{")
