"""The committed JSON Schema files match the models (regenerate: `maskwatch schemas`)."""

from __future__ import annotations

import pytest

from schemas.export import CONTRACTS, JSON_DIR, json_schemas, render


@pytest.mark.parametrize("name", sorted(CONTRACTS))
def test_committed_schema_matches_model(name: str) -> None:
    path = JSON_DIR / f"{name}.json"
    assert path.exists(), f"{path} missing: run `maskwatch schemas`"
    assert path.read_text() == render(json_schemas()[name]), (
        f"{path} drifted from {CONTRACTS[name].__name__}: run `maskwatch schemas` and review"
    )


def test_no_stray_schema_files() -> None:
    assert {p.stem for p in JSON_DIR.glob("*.json")} == set(CONTRACTS)
