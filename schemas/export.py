"""`maskwatch schemas`: write the JSON Schema of every contract into `schemas/json/`.

A test regenerates them in memory and fails when the committed files drift from the models.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from schemas.alert import AlertEvent
from schemas.common import Contract
from schemas.dead_letter import DeadLetter
from schemas.frame import FrameMeta
from schemas.result import FrameResult

CONTRACTS: dict[str, type[Contract]] = {
    "frame_headers": FrameMeta,
    "frame_result": FrameResult,
    "dead_letter": DeadLetter,
    "alert_event": AlertEvent,
}
JSON_DIR = Path(__file__).parent / "json"


def json_schemas() -> dict[str, dict[str, Any]]:
    """The JSON Schema of every contract, by file stem."""
    return {
        name: model.model_json_schema(mode="serialization") for name, model in CONTRACTS.items()
    }


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


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
    out.mkdir(parents=True, exist_ok=True)
    for name, schema in json_schemas().items():
        (out / f"{name}.json").write_text(render(schema))
        click.echo(f"wrote {out / (name + '.json')}")
