"""`maskwatch results tail|export`: watch or export the results topic from the command line.

Both are read-only consumers (see consumers/reader.py): no consumer group, nothing
committed, every partition assigned and positioned by time. They take the same Kafka
settings as the services (`MASKWATCH_KAFKA_*`) plus their own typed options. Undecodable
records are reported on stderr with their reason and position, never silently dropped.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Iterator
from contextlib import nullcontext
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, Self

import click
from pydantic import AwareDatetime, BeforeValidator, Field, model_validator
from pydantic_settings import SettingsConfigDict

from consumers import formats
from consumers.reader import (
    Filter,
    Read,
    assign_all,
    follow,
    offsets_at,
    open_reader,
    read_between,
    seek_all,
)
from runtime.kafka import KafkaSettings
from runtime.logs import configure_logging
from runtime.settings import ServiceSettings, load_settings, settings_options
from schemas.common import CameraId
from schemas.result import Label

_AGO = re.compile(r"^(\d+)([smhd])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _relative(value: Any) -> Any:
    """'15m', '2h', '7d' mean that long ago; anything else is left to datetime parsing."""
    if isinstance(value, str) and (match := _AGO.match(value.strip())):
        amount, unit = match.groups()
        return datetime.now(UTC) - timedelta(seconds=int(amount) * _UNIT_S[unit])
    return value


Moment = Annotated[AwareDatetime, BeforeValidator(_relative)]


class TailSettings(ServiceSettings):
    """`maskwatch results tail` (env prefix MASKWATCH_RESULTS_TAIL_)."""

    model_config = SettingsConfigDict(env_prefix="MASKWATCH_RESULTS_TAIL_")

    camera: CameraId | None = Field(None, description="Only this camera's results.")
    label: Label | None = Field(None, description="Only results with a face of this label.")
    output: Literal["text", "json"] = Field("text", description="text lines or JSON lines.")
    since: Moment | None = Field(
        None,
        description="Start at results published since then (RFC 3339 with zone, or 15m, 2h, "
        "7d ago); default: only new ones.",
    )
    limit: int | None = Field(None, ge=1, description="Stop after this many results.")


class ExportSettings(ServiceSettings):
    """`maskwatch results export` (env prefix MASKWATCH_RESULTS_EXPORT_)."""

    model_config = SettingsConfigDict(env_prefix="MASKWATCH_RESULTS_EXPORT_")

    start: Moment = Field(
        description="First publish time (RFC 3339 with zone, or 15m, 2h, 7d ago), inclusive."
    )
    end: Moment | None = Field(None, description="Last publish time, exclusive; default: now.")
    camera: CameraId | None = Field(None, description="Only this camera's results.")
    label: Label | None = Field(None, description="Only results with a face of this label.")
    output: Literal["jsonl", "csv", "parquet"] = Field("jsonl", description="File format.")
    out: Path | None = Field(
        None, description="File to write; default: standard output (not for parquet)."
    )

    @model_validator(mode="after")
    def _parquet_needs_a_file(self) -> Self:
        if self.output == "parquet" and self.out is None:
            raise ValueError("output parquet needs out (a file)")
        return self


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _report(reads: Iterable[Read]) -> Iterator[Read]:
    """Pass decoded results on; report undecodable records on stderr."""
    for read in reads:
        if read.result is None:
            click.echo(formats.human_line(read), err=True)
            continue
        yield read


@click.group("results")
def cli() -> None:
    """Watch or export the results topic (read-only: no consumer group, nothing committed)."""
    configure_logging("WARNING", json_output=False)


@cli.command("tail")
@settings_options(KafkaSettings)
@settings_options(TailSettings)
def tail(**values: Any) -> None:
    """Print results as they arrive (or since a time), optionally for one camera or label."""
    kafka = load_settings(KafkaSettings, values)
    settings = load_settings(TailSettings, values)
    consumer = open_reader(kafka, "maskwatch-results-tail")
    try:
        partitions = assign_all(consumer, kafka.results_topic)
        if settings.since is not None:
            seek_all(consumer, offsets_at(consumer, partitions, _ms(settings.since)))
        else:
            consumer.seek_to_end(*partitions)
        line = formats.json_line if settings.output == "json" else formats.human_line
        keep = Filter(settings.camera, settings.label)
        for shown, read in enumerate(_report(follow(consumer, keep)), start=1):
            click.echo(line(read))
            if settings.limit is not None and shown >= settings.limit:
                break
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()


@cli.command("export")
@settings_options(KafkaSettings)
@settings_options(ExportSettings)
def export(**values: Any) -> None:
    """Write the results published in a time range as JSON lines, CSV or Parquet."""
    kafka = load_settings(KafkaSettings, values)
    settings = load_settings(ExportSettings, values)
    end = settings.end or datetime.now(UTC)
    consumer = open_reader(kafka, "maskwatch-results-export")
    try:
        partitions = assign_all(consumer, kafka.results_topic)
        keep = Filter(settings.camera, settings.label)
        reads = _report(read_between(consumer, partitions, _ms(settings.start), _ms(end), keep))
        count = _write(reads, settings)
    finally:
        consumer.close()
    click.echo(f"exported {count} results to {settings.out or 'stdout'}", err=True)


def _write(reads: Iterator[Read], settings: ExportSettings) -> int:
    rows = (formats.row(read, read.result) for read in reads if read.result is not None)
    if settings.output == "parquet" and settings.out is not None:
        return formats.write_parquet(rows, settings.out)
    opened = (
        settings.out.open("w", encoding="utf-8", newline="")
        if settings.out
        else nullcontext(sys.stdout)
    )
    with opened as stream:
        if settings.output == "csv":
            return formats.write_csv(rows, stream)
        return formats.write_json_lines(reads, stream)
