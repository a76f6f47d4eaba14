"""`maskwatch detector`: the command line; the worker is built in `workers.detector.app`.

Only the settings are imported here (pydantic), so `maskwatch detector --help` stays fast;
Kafka, gRPC, numpy, OpenCV and the detector's runtime are imported by `app` when the
command runs (an import error there surfaces as it would at the top of this module).
"""

from __future__ import annotations

from typing import Any

import click

from runtime.settings import load_settings, settings_options
from workers.detector.settings import DetectorSettings


@click.command("detector")
@settings_options(DetectorSettings)
def cli(**values: Any) -> None:
    """Detect and classify faces in frames from Kafka; publish one result per frame."""
    settings = load_settings(DetectorSettings, values)
    from workers.detector.app import run

    run(settings)
