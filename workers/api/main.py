"""`maskwatch api`: serve the read API and the live dashboard with uvicorn."""

from __future__ import annotations

from typing import Any

import click
import uvicorn

from runtime.logs import configure_logging, get_logger
from runtime.settings import load_settings, settings_options
from workers.api.app import create_app
from workers.api.settings import ApiSettings

log = get_logger("api")


def make_server(settings: ApiSettings) -> uvicorn.Server:
    """The API as a uvicorn server; `.run()` blocks (signals handled only in the main thread),
    so a pipeline runner can also start it in a thread and stop it with `should_exit`."""
    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.runtime.log_level.lower(),
        access_log=False,
        log_config=None,  # uvicorn's records go through our structured logging
        timeout_graceful_shutdown=5,
    )
    return uvicorn.Server(config)


@click.command("api")
@settings_options(ApiSettings)
def cli(**values: Any) -> None:
    """HTTP read API, event stream and live dashboard over the aggregator's Redis state."""
    settings = load_settings(ApiSettings, values)
    configure_logging(settings.runtime.log_level, settings.runtime.json_logs)
    log.info(
        "starting",
        host=settings.host,
        port=settings.port,
        key_prefix=settings.key_prefix,
        auth=settings.bearer_token() is not None,
    )
    make_server(settings).run()
