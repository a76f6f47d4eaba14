"""The one command line: every subcommand is listed, and every option names its env var."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from workers.cli import SUBCOMMANDS, main


def _leaf_commands(name: str, command: click.Command) -> list[tuple[str, click.Command]]:
    if isinstance(command, click.Group):
        ctx = click.Context(command)
        return [
            leaf
            for sub in command.list_commands(ctx)
            for leaf in _leaf_commands(f"{name} {sub}", command.get_command(ctx, sub))  # type: ignore[arg-type]
        ]
    return [(name, command)]


def test_help_lists_every_subcommand() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    for name in SUBCOMMANDS:
        assert f"  {name} " in result.output


@pytest.mark.parametrize("name", sorted(SUBCOMMANDS))
def test_every_option_shows_its_environment_variable(name: str) -> None:
    group = click.Context(main)
    command = main.get_command(group, name)
    assert command is not None
    for full_name, leaf in _leaf_commands(name, command):
        for param in leaf.params:
            if isinstance(param, click.Option) and param.name != "help":
                assert "env: MASKWATCH_" in (param.help or ""), (
                    f"maskwatch {full_name} {param.opts[0]} shows no environment variable"
                )
