"""Structured logging: JSON lines with fields (camera_id, seq, partition, offset), not prose.

One format for every line a service writes: our structlog loggers and every standard-library
logger (uvicorn, kafka-python, grpc, absl/TensorFlow, onnxruntime's Python side) render
through the same processors and the same renderer, so a log pipeline parses one shape.
Native libraries that write to stderr themselves (gRPC core, TensorFlow's and ONNX
Runtime's C++ logs) are quieted through their own switches, set before they load.
"""

from __future__ import annotations

import logging
import os
import sys

import structlog

NOISY = ("kafka", "urllib3", "absl", "tensorflow", "grpc", "onnxruntime", "h5py")
"""Libraries logged from WARNING up unless the service runs at DEBUG."""
NATIVE_QUIET = {"TF_CPP_MIN_LOG_LEVEL": "2", "GRPC_VERBOSITY": "ERROR"}
"""Environment switches of native loggers (only defaults: an operator's value wins)."""


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
