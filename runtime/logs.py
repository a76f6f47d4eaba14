"""Structured logging: JSON lines with fields (camera_id, seq, partition, offset), not prose.

One format for every line a service writes: our structlog loggers and every standard-library
logger (uvicorn, kafka-python, grpc, absl/TensorFlow, onnxruntime's Python side) render
through the same processors and the same renderer, so a log pipeline parses one shape.
Native libraries that write to stderr themselves (gRPC core, TensorFlow's and ONNX
Runtime's C++ logs) are quieted through their own switches, set before they load.
Credentials are masked in every line, ours and the libraries' (`redact`).
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import MutableMapping
from typing import Any
from urllib.parse import quote

import structlog

NOISY = ("kafka", "urllib3", "absl", "tensorflow", "grpc", "onnxruntime", "h5py")
"""Libraries logged from WARNING up unless the service runs at DEBUG."""
NATIVE_QUIET = {"TF_CPP_MIN_LOG_LEVEL": "2", "GRPC_VERBOSITY": "ERROR"}
"""Environment switches of native loggers (only defaults: an operator's value wins)."""


MASK = "***"
SECRET_KEY = re.compile(
    r"password|passwd|secret|token|api_?key|authorization|credential|cookie", re.I
)
"""Field names whose values are never logged (whatever the value's type)."""
URL_USERINFO = re.compile(
    r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^/\s:@]*):(?P<pw>[^/\s@]*)@", re.I
)
"""`scheme://user:password@` in any text: cameras' RTSP URLs, Redis URLs, webhook URLs."""


MIN_KNOWN_SECRET_CHARS = 4
"""Shorter registered secrets are not masked by value (masking every "ab" would garble logs);
the URL rule still masks them in userinfo."""
_known_secrets: list[str] = []


def register_secret(value: str) -> None:
    """Mask `value` (and its percent-encoded form) wherever it appears in a log line from now
    on: for secrets resolved into configuration text (a camera URL's `${CAM_07_PASSWORD}`),
    which a library may echo anywhere in a message, not only in a URL's userinfo.
    Call at start-up, before the threads that log."""
    if len(value) < MIN_KNOWN_SECRET_CHARS:
        return
    for form in {value, quote(value, safe="")}:
        if form not in _known_secrets:
            _known_secrets.append(form)
    _known_secrets.sort(key=len, reverse=True)  # a longer secret containing a shorter one first


def redact_text(text: str) -> str:
    """Mask every registered secret and the password of every URL with userinfo in `text`
    (the user name stays)."""
    for secret in _known_secrets:
        text = text.replace(secret, MASK)
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
    (the event, every field, formatted exceptions), so no credential reaches a log line.
    It runs in the formatter, so standard-library records (kafka-python, grpc) get it too."""
    return {
        key: MASK if SECRET_KEY.search(key) else _redacted(value)
        for key, value in event_dict.items()
    }


def _shared() -> list[structlog.types.Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]


def configure_logging(level: str = "INFO", json_output: bool = True) -> None:
    """Set up structlog and the standard-library root logger once per process."""
    for name, value in NATIVE_QUIET.items():
        os.environ.setdefault(name, value)
    numeric = logging.getLevelName(level.upper())
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if json_output else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[
            *_shared(),
            structlog.processors.format_exc_info,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_shared(),
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            redact,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
    for name in NOISY:
        logging.getLogger(name).setLevel(numeric if numeric <= logging.DEBUG else logging.WARNING)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        # uvicorn's own handlers (if any) would print a second, plain line; its level follows
        # ours until uvicorn.Config sets it from the same log level
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
        logger.setLevel(logging.NOTSET)
    _quiet_onnxruntime()


def _quiet_onnxruntime() -> None:
    """ONNX Runtime's C++ logger prints its own lines; keep it to errors once it is loaded."""
    ort = sys.modules.get("onnxruntime")
    if ort is not None:
        ort.set_default_logger_severity(3)


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """A structured logger bound to the component `name`."""
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(component=name)
    return logger
