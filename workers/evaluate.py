"""`maskwatch evaluate classifier|pipeline`: the two evaluations of the method.

`classifier` scores crops (serving.evaluate); `pipeline` runs detect → crop → classify over
VOC-annotated photos through the model server (workers.detector.evaluate).
"""

from __future__ import annotations

import importlib

import click

TARGETS = {
    "classifier": ("serving.evaluate", "Per-class P/R/F1 of the classifier on held-out crops."),
    "pipeline": ("workers.detector.evaluate", "AP@0.5 per class and face recall on VOC photos."),
}


class _Lazy(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(TARGETS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in TARGETS:
            return None
        command = importlib.import_module(TARGETS[cmd_name][0]).cli
        return command if isinstance(command, click.Command) else None

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, text) for name, (_, text) in sorted(TARGETS.items())])


@click.group("evaluate", cls=_Lazy)
def cli() -> None:
    """Evaluate the classifier on crops or the whole pipeline on annotated photos."""
