"""Structured logging: JSON lines with fields (camera_id, seq, partition, offset), not prose."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

MASK = "***"
SECRET_KEY = re.compile(
    r"pass(word|wd)?|secret|token|api_?key|authorization|credential|cookie", re.I
)
"""Field names whose values are never logged (whatever the value's type)."""
URL_USERINFO = re.compile(
    r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^/\s:@]*):(?P<pw>[^/\s@]*)@", re.I
)
"""`scheme://user:password@` in any text: cameras' RTSP URLs, Redis URLs, webhook URLs."""


def redact_text(text: str) -> str:
    """Mask the password of every URL with userinfo in `text` (the user name stays)."""
    return URL_USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)


def _redacted(value: Any) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {k: MASK if SECRET_KEY.search(str(k)) else _redacted(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_redacted(v) for v in value)
    return value


def redact(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: secret-named fields masked, URL passwords masked everywhere
    (the event, every field, formatted exceptions), so no credential reaches a log line."""
    return {
        key: MASK if SECRET_KEY.search(key) else _redacted(value)
        for key, value in event_dict.items()
    }


class RedactingFilter(logging.Filter):
    """The same masking for stdlib loggers (kafka-python, grpc, uvicorn)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact_text(message)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        return True


def configure_logging(level: str = "INFO", json_output: bool = True) -> None:
    """Set up structlog once per process; stdlib loggers (kafka, grpc) go through it too."""
    processors: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        redact,
    ]
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if json_output else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[*processors, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(name)s %(message)s")
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """A structured logger bound to the component `name`."""
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(component=name)
    return logger
