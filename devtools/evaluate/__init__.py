"""`maskwatch evaluate classifier|pipeline`: the two evaluations of the method.

`classifier` scores held-out crops (`classifier.py`); `pipeline` runs detect → crop → classify
over VOC-annotated photos through the model server (`pipeline.py`).
"""

from __future__ import annotations

import click

from workers.cli import LazyGroup

TARGETS = {
    "classifier": (
        "devtools.evaluate.classifier:cli",
        "Per-class P/R/F1 of the classifier on held-out crops.",
    ),
    "pipeline": (
        "devtools.evaluate.pipeline:cli",
        "AP@0.5 per class and face recall on VOC photos.",
    ),
}


@click.group("evaluate", cls=LazyGroup, lazy=TARGETS)
def cli() -> None:
    """Evaluate the classifier on crops or the whole pipeline on annotated photos."""
