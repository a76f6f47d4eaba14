"""`maskwatch api`: serve the read API and the live dashboard with uvicorn."""

from __future__ import annotations

from typing import Any

import click
import uvicorn

from workers.api.app import create_app
from workers.api.settings import ApiSettings
from workers.common.logs import configure_logging, get_logger
from workers.common.settings import load_settings, settings_options

log = get_logger("api")


@click.command("api")
@settings_options(ApiSettings)
def cli(**values: Any) -> None:
    """HTTP read API, event stream and live dashboard over the aggregator's Redis state."""
    settings = load_settings(ApiSettings, values)
    configure_logging(settings.log_level, settings.json_logs)
    log.info("starting", host=settings.host, port=settings.port, key_prefix=settings.key_prefix,
             auth=settings.bearer_token() is not None)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        access_log=False,
        log_config=None,  # uvicorn's records go through our structured logging
        timeout_graceful_shutdown=5,
    )
