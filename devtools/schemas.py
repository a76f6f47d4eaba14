"""`maskwatch schemas`: write the JSON Schema files of the message contracts.

The click command lives here, not in `schemas/`, so the contracts depend on pydantic only
(they ship alone as the `maskwatch-schemas` distribution).
"""

from __future__ import annotations

from pathlib import Path

import click

from schemas.export import JSON_DIR, write_schemas


@click.command("schemas")
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=JSON_DIR,
    envvar="MASKWATCH_SCHEMAS_OUT",
    help=f"Folder to write the schema files to. [env: MASKWATCH_SCHEMAS_OUT; default: {JSON_DIR}]",
)
def cli(out: Path) -> None:
    """Write the JSON Schema files of the message contracts."""
    for path in write_schemas(out):
        click.echo(f"wrote {path}")
