"""Settings as CLI options: env names in help, precedence, JSON fields, readable errors."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Literal

import click
import pytest
from click.testing import CliRunner
from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import SettingsConfigDict

from runtime.settings import (
    CLI_DEFAULT,
    TOOLING_VARIABLES,
    ServiceSettings,
    UnknownSettingError,
    env_names,
    load_settings,
    settings_options,
)

REPO = Path(__file__).resolve().parents[2]


class Window(BaseModel):
    seconds: int = Field(60, ge=1, description="Window length.")
    buckets: int = Field(6, ge=1, description="Buckets per window.")


class DemoSettings(ServiceSettings):
    """A stand-in service's settings."""

    model_config = SettingsConfigDict(env_prefix="MASKWATCH_DEMO_")

    batch_size: int = Field(8, ge=1, le=64, description="Frames per batch.")
    name: str = Field("demo", min_length=1, description="Worker name.")
    snapshots: bool = Field(False, description="Keep face snapshots.")
    cameras: list[str] = Field(default_factory=list, description="Camera ids.")
    window: Window = Field(default_factory=Window, description="Rolling window.")
    password: SecretStr | None = Field(None, description="A secret.")
    level: Literal["DEBUG", "INFO"] = Field("INFO", description="Log level.")
    ratio: float = Field(0.5, ge=0, le=1, description="A share.")
    weights: Path | None = Field(None, description="Weights file.")
    started: float = Field(default_factory=time.time, description="Start time.")
    host: str = Field(
        default_factory=socket.gethostname,
        description="Host.",
        json_schema_extra={CLI_DEFAULT: "the host name"},
    )


@click.command()
@settings_options(DemoSettings)
def demo(**values: Any) -> None:
    click.echo(load_settings(DemoSettings, values).model_dump_json())


def run(args: list[str], env: dict[str, str] | None = None) -> click.testing.Result:
    return CliRunner().invoke(demo, args, env=env or {})


def test_help_shows_description_env_var_and_default() -> None:
    text = " ".join(run(["--help"]).output.split())
    for option, env in [
        ("--batch-size", "MASKWATCH_DEMO_BATCH_SIZE"),
        ("--snapshots / --no-snapshots", "MASKWATCH_DEMO_SNAPSHOTS"),
        ("--cameras", "MASKWATCH_DEMO_CAMERAS"),
    ]:
        assert option in text
        assert f"env: {env}" in text
    assert "Frames per batch. [env: MASKWATCH_DEMO_BATCH_SIZE; default: 8]" in text
    assert "--window-seconds" in text
    assert "Window length. [env: MASKWATCH_DEMO_WINDOW__SECONDS; default: 60]" in text


def test_help_shows_types_choices_and_the_same_defaults_on_every_run() -> None:
    text = " ".join(run(["--help"]).output.split())
    assert "--batch-size INTEGER" in text and "--ratio FLOAT" in text
    assert "--weights PATH" in text and "--level [DEBUG|INFO]" in text
    assert "--cameras JSON" in text and "--name TEXT" in text
    assert "MASKWATCH_DEMO_WEIGHTS; default: none]" in text
    assert "MASKWATCH_DEMO_SNAPSHOTS; default: off]" in text
    assert "MASKWATCH_DEMO_STARTED; default: computed at start-up]" in text
    assert "MASKWATCH_DEMO_HOST; default: the host name]" in text
    assert socket.gethostname() not in text and "None" not in text and "null" not in text
    assert text == " ".join(run(["--help"]).output.split())
    assert "--password" not in text  # secrets: environment only


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--batch-size", "many"], "'many' is not a valid integer"),
        (["--ratio", "half"], "'half' is not a valid float"),
        (["--level", "LOUD"], "'LOUD' is not one of 'DEBUG', 'INFO'"),
    ],
)
def test_bad_types_fail_with_clicks_message(args: list[str], message: str) -> None:
    result = run(args)
    assert result.exit_code == 2 and message in result.output, result.output


def test_typed_values_reach_the_settings() -> None:
    result = run(["--level", "DEBUG", "--ratio", "0.25", "--weights", "w.onnx"])
    assert result.exit_code == 0, result.output
    settings = DemoSettings.model_validate_json(result.output)
    assert (settings.level, settings.ratio, settings.weights) == ("DEBUG", 0.25, Path("w.onnx"))


def test_defaults() -> None:
    result = run([])
    assert result.exit_code == 0, result.output
    loaded = DemoSettings.model_validate_json(result.output)
    assert loaded.model_dump(exclude={"started"}) == DemoSettings().model_dump(exclude={"started"})


@pytest.mark.parametrize(
    ("env", "args", "expected"),
    [
        ({"MASKWATCH_DEMO_BATCH_SIZE": "16"}, [], 16),
        ({"MASKWATCH_DEMO_BATCH_SIZE": "16"}, ["--batch-size", "32"], 32),
        ({}, ["--batch-size", "4"], 4),
    ],
    ids=["env-over-default", "cli-over-env", "cli-over-default"],
)
def test_precedence(env: dict[str, str], args: list[str], expected: int) -> None:
    result = run(args, env)
    assert result.exit_code == 0, result.output
    assert DemoSettings.model_validate_json(result.output).batch_size == expected


def test_flags_and_json_fields() -> None:
    result = run(["--snapshots", "--cameras", '["cam-1", "cam-2"]', "--window-seconds", "5"])
    assert result.exit_code == 0, result.output
    settings = DemoSettings.model_validate_json(result.output)
    assert settings.snapshots is True
    assert settings.cameras == ["cam-1", "cam-2"]
    assert settings.window == Window(seconds=5)
    off = run(["--no-snapshots"], {"MASKWATCH_DEMO_SNAPSHOTS": "true"})
    assert DemoSettings.model_validate_json(off.output).snapshots is False


@pytest.mark.parametrize(
    ("args", "env", "problem"),
    [
        (["--batch-size", "0"], {}, "batch_size (MASKWATCH_DEMO_BATCH_SIZE)"),
        ([], {"MASKWATCH_DEMO_BATCH_SIZE": "lots"}, "batch_size (MASKWATCH_DEMO_BATCH_SIZE)"),
        (["--window-seconds", "0"], {}, "window.seconds (MASKWATCH_DEMO_WINDOW__SECONDS)"),
        (["--cameras", "cam-1"], {}, "not valid JSON"),
    ],
    ids=["out-of-bounds", "bad-env", "nested", "not-json"],
)
def test_bad_values_fail_with_a_readable_line(
    args: list[str], env: dict[str, str], problem: str
) -> None:
    result = run(args, env)
    assert result.exit_code == 2
    assert problem in result.output
    assert "Traceback" not in result.output


def test_settings_are_frozen_and_strict() -> None:
    with pytest.raises(ValueError, match="extra"):
        DemoSettings(unknown=1)  # type: ignore[call-arg]
    settings = DemoSettings()
    with pytest.raises(ValueError, match="frozen"):
        settings.batch_size = 2  # type: ignore[misc]


@pytest.mark.parametrize(
    ("env", "args", "expected"),
    [
        # a section given in part keeps the defaults of its other fields
        ({"MASKWATCH_DEMO_WINDOW__SECONDS": "5"}, [], Window(seconds=5, buckets=6)),
        ({"MASKWATCH_DEMO_WINDOW": '{"buckets": 2}'}, [], Window(seconds=60, buckets=2)),
        # the command line overrides one field of a section the environment set
        (
            {"MASKWATCH_DEMO_WINDOW__SECONDS": "5"},
            ["--window-buckets", "3"],
            Window(seconds=5, buckets=3),
        ),
        ({}, [], Window()),
    ],
    ids=["env-field", "env-json-part", "cli-over-env-field", "defaults"],
)
def test_sections_are_set_field_by_field(
    env: dict[str, str], args: list[str], expected: Window
) -> None:
    result = run(args, env)
    assert result.exit_code == 0, result.output
    assert DemoSettings.model_validate_json(result.output).window == expected


def test_env_names_cover_fields_and_section_fields() -> None:
    fields = {f"MASKWATCH_DEMO_{name.upper()}" for name in DemoSettings.model_fields}
    section = {"MASKWATCH_DEMO_WINDOW__SECONDS", "MASKWATCH_DEMO_WINDOW__BUCKETS"}
    assert env_names(DemoSettings) == fields | section


def test_a_section_inside_a_section_is_known_and_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The producer's camera-health section holds the Redis security section: the chart sets
    MASKWATCH_PRODUCER_HEALTH__REDIS_SECURITY__PASSWORD_FILE, which must not be a typo."""
    from workers.producer.main import ProducerSettings

    variable = "MASKWATCH_PRODUCER_HEALTH__REDIS_SECURITY__PASSWORD_FILE"
    assert variable in env_names(ProducerSettings)
    monkeypatch.setenv(variable, str(tmp_path / "password"))
    settings = load_settings(ProducerSettings, {})
    assert settings.health.redis_security.password_file == tmp_path / "password"


@pytest.mark.parametrize(
    ("variable", "expected"),
    [
        (
            "MASKWATCH_DEMO_BATCHSIZE",
            "unknown setting MASKWATCH_DEMO_BATCHSIZE: DemoSettings has no such field; "
            "did you mean MASKWATCH_DEMO_BATCH_SIZE?",
        ),
        (
            "MASKWATCH_DEMO_WINDOW_SECONDS",
            "did you mean MASKWATCH_DEMO_WINDOW__SECONDS?",
        ),
        ("maskwatch_demo_windows__seconds", "did you mean MASKWATCH_DEMO_WINDOW__SECONDS?"),
        (
            "MASKWATCH_KAKFA_BOOTSTRAP_SERVERS",
            "unknown setting MASKWATCH_KAKFA_BOOTSTRAP_SERVERS: no service has its prefix; "
            "did you mean a MASKWATCH_KAFKA_* variable?",
        ),
    ],
    ids=["field", "section-delimiter", "lower-case", "prefix"],
)
def test_a_misspelt_variable_fails_with_one_line_and_the_closest_name(
    variable: str, expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = run([], {variable: "1"})
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if "unknown setting" in line]
    assert len(lines) == 1
    assert expected in lines[0]
    monkeypatch.setenv(variable, "1")
    with pytest.raises(UnknownSettingError, match=variable.upper()):
        DemoSettings()  # constructing the class directly refuses it too


@pytest.mark.parametrize(
    "variable",
    ["MASKWATCH_KAFKA_BOOTSTRAP_SERVERS", "MASKWATCH_DETECTOR_WORKER_ID", *TOOLING_VARIABLES],
)
def test_variables_of_other_services_and_tooling_are_left_to_them(
    variable: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(variable, "1")
    assert DemoSettings().batch_size == 8  # constructed: nothing refused


def test_the_real_cli_refuses_a_misspelt_variable_at_start_up() -> None:
    """The aggregator is started as a process; it stops before it connects to anything."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MASKWATCH_")}
    env["MASKWATCH_AGGREGATOR_GROUPID"] = "typo"
    env["MASKWATCH_KAFKA_BOOTSTRAP_SERVERS"] = "127.0.0.1:1"
    result = subprocess.run(
        [sys.executable, "-c", "from workers.cli import main; main()", "aggregator"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    assert (
        "Error: unknown setting MASKWATCH_AGGREGATOR_GROUPID: AggregatorSettings has no such "
        "field; did you mean MASKWATCH_AGGREGATOR_GROUP_ID?"
    ) in result.stderr
    assert "Traceback" not in result.stderr


class NeedsStart(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="MASKWATCH_NEEDS_")

    start: int = Field(description="First thing.")


def test_help_calls_a_field_without_default_required() -> None:
    @click.command()
    @settings_options(NeedsStart)
    def needs(**values: Any) -> None:
        click.echo(load_settings(NeedsStart, values).model_dump_json())

    text = " ".join(CliRunner().invoke(needs, ["--help"]).output.split())
    assert "First thing. [env: MASKWATCH_NEEDS_START; default: required]" in text
    missing = CliRunner().invoke(needs, [], env={})
    assert missing.exit_code != 0
    assert "start (MASKWATCH_NEEDS_START): Field required" in missing.output
