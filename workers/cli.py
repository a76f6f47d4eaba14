"""`maskwatch`: one command line, a subcommand per service.

Subcommands are imported only when run, so `maskwatch --help` is fast and a service's image
needs only that service's dependencies.
"""

from __future__ import annotations

import importlib
from typing import Any

import click

SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "stack": (
        "devtools.stack:cli",
        "Bring the local stack (Kafka, Redis, model server) up or down.",
    ),
    "topics": ("runtime.topics:cli", "Create or describe the Kafka topics."),
    "schemas": ("devtools.schemas:cli", "Write the JSON Schema files of the message contracts."),
    "train": ("serving.cli:train_cli", "Train the Xception mask classifier."),
    "export": (
        "serving.cli:export_cli",
        "Export the classifier: SavedModel + accuracy-gated OpenVINO IR.",
    ),
    "serve": ("serving.server:cli", "Serve SavedModels over the TensorFlow Serving gRPC API."),
    "evaluate": ("devtools.evaluate:cli", "Evaluate the classifier or the whole pipeline."),
    "producer": ("workers.producer.main:cli", "Read cameras and publish frames to Kafka."),
    "detector": ("workers.detector.main:cli", "Detect and classify faces in frames from Kafka."),
    "aggregator": ("workers.aggregator.main:cli", "Fold frame results into Redis per camera."),
    "api": ("workers.api.main:cli", "HTTP read API and live dashboard over Redis."),
    "results": (
        "consumers.results:cli",
        "Watch or export the results topic (read-only, no consumer group).",
    ),
    "run": ("devtools.run:cli", "Run the whole pipeline locally on sample cameras."),
}


class LazyGroup(click.Group):
    """A click group whose subcommands ("module:attribute", help) are imported on first use."""

    def __init__(self, *args: Any, lazy: dict[str, tuple[str, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = lazy

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(self.lazy)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.lazy:
            return None
        target, _ = self.lazy[cmd_name]
        module_name, _, attribute = target.partition(":")
        command = getattr(importlib.import_module(module_name), attribute or "cli")
        if not isinstance(command, click.Command):
            raise TypeError(f"{target} is not a click command")
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, help_text) for name, (_, help_text) in sorted(self.lazy.items())]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(
    cls=LazyGroup, lazy=SUBCOMMANDS, context_settings={"help_option_names": ["-h", "--help"]}
)
@click.version_option(package_name="maskwatch")
def main() -> None:
    """maskwatch: per-camera face-mask compliance from city camera streams, in real time."""
