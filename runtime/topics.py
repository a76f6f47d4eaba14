"""`maskwatch topics create|describe`: the Kafka topics, through the admin API.

The topics and their settings are defined once, in `runtime.kafka.topic_specs`;
`create` is idempotent (existing topics are reported, never altered) and `describe` shows
what the broker actually holds next to what the specs want.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from runtime.kafka import KafkaSettings, create_topics, existing_topics, topic_specs
from runtime.logs import configure_logging
from runtime.settings import load_settings, settings_options


@click.group("topics")
def cli() -> None:
    """Create or describe the Kafka topics."""
    configure_logging("WARNING", json_output=False)


@cli.command("create")
@settings_options(KafkaSettings)
def create(**values: Any) -> None:
    """Create missing topics; exit 1 if an existing one differs from its spec."""
    settings = load_settings(KafkaSettings, values)
    outcome = create_topics(settings)
    for topic, result in outcome.items():
        click.echo(f"{topic}: {result}")
    sys.exit(1 if any(r.startswith("differs") for r in outcome.values()) else 0)


@cli.command("describe")
@settings_options(KafkaSettings)
def describe(**values: Any) -> None:
    """Print each topic's partitions, retention and max message size as the broker has them."""
    settings = load_settings(KafkaSettings, values)
    specs = topic_specs(settings)
    found = existing_topics(settings, [s.name for s in specs])
    for spec in specs:
        have = found.get(spec.name)
        if have is None:
            click.echo(f"{spec.name}: missing")
            continue
        mark = "" if have == spec else f"  (spec: {spec})"
        click.echo(
            f"{spec.name}: partitions={have.partitions} retention.ms={have.retention_ms} "
            f"max.message.bytes={have.max_message_bytes}{mark}"
        )
    sys.exit(0 if len(found) == len(specs) else 1)
