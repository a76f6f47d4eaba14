"""The JSON Schema of every contract, and writing them as files (`schemas/json/`).

Pure standard library besides the models, so the light `maskwatch-schemas` distribution can
regenerate them too (`python -m schemas.export OUT_DIR`); the project's own command is
`maskwatch schemas` (devtools/schemas.py). A test regenerates them in memory and fails when
the committed files drift from the models.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

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


def write_schemas(out: Path) -> list[Path]:
    """Write `<name>.json` for every contract into `out`; returns the files written."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in json_schemas().items():
        path = out / f"{name}.json"
        path.write_text(render(schema))
        written.append(path)
    return written


if __name__ == "__main__":
    for written_path in write_schemas(Path(sys.argv[1]) if len(sys.argv) > 1 else JSON_DIR):
        print(f"wrote {written_path}")
