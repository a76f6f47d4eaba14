"""The contracts distribution's version is tied to the schema versions (see schemas/__init__)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import schemas
from schemas.alert import ALERT_SCHEMA_VERSION, SUPPORTED_ALERT_VERSIONS
from schemas.dead_letter import DEAD_LETTER_SCHEMA_VERSION, SUPPORTED_DEAD_LETTER_VERSIONS
from schemas.frame import FRAME_SCHEMA_VERSION, SUPPORTED_FRAME_VERSIONS
from schemas.result import RESULT_SCHEMA_VERSION, SUPPORTED_RESULT_VERSIONS

PACKAGE = Path(__file__).resolve().parents[2] / "packages" / "maskwatch-schemas"


def test_version_starts_with_the_schema_versions() -> None:
    *versions, revision = schemas.__version__.split(".")
    assert [int(v) for v in versions] == [
        RESULT_SCHEMA_VERSION,
        DEAD_LETTER_SCHEMA_VERSION,
        ALERT_SCHEMA_VERSION,
        FRAME_SCHEMA_VERSION,
    ], "a schema version moved: update schemas.__version__ (and restart its revision at 0)"
    assert revision.isdigit()


def test_every_writer_version_is_one_its_readers_support() -> None:
    assert RESULT_SCHEMA_VERSION in SUPPORTED_RESULT_VERSIONS
    assert DEAD_LETTER_SCHEMA_VERSION in SUPPORTED_DEAD_LETTER_VERSIONS
    assert ALERT_SCHEMA_VERSION in SUPPORTED_ALERT_VERSIONS
    assert FRAME_SCHEMA_VERSION in SUPPORTED_FRAME_VERSIONS


def test_distribution_takes_the_repositorys_schemas_and_needs_pydantic_only() -> None:
    project = tomllib.loads((PACKAGE / "pyproject.toml").read_text())
    assert project["project"]["dependencies"] == ["pydantic>=2.12,<3"]
    source = PACKAGE / project["tool"]["setuptools"]["package-dir"]["schemas"]
    assert source.resolve() == Path(schemas.__file__).resolve().parent
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "schemas.__version__"}
