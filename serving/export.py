"""Export the classifier as a SavedModel in TensorFlow Serving's layout.

TF Serving (and `maskwatch serve`) watch `<base>/<model_name>/` and serve the highest
numeric subfolder, so a new model ships by writing a new version folder next to the old one.
A version is written under a hidden temporary name and renamed into place at the end: a
server polling the folder never sees a half-written version.

The `serving_default` signature takes uint8 RGB crops `[N, S, S, 3]` named `crops` and
returns `probabilities` float32 `[N, 2]` in `serving.dataset.CLASSES` order. Normalisation
is part of the Keras model, so every client sends raw pixels.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import keras

SIGNATURE = "serving_default"
INPUT = "crops"
OUTPUT = "probabilities"
_VERSION = re.compile(r"^[0-9]+$")


def versions(model_dir: Path) -> list[int]:
    """The numeric version folders of `model_dir` that hold a SavedModel, ascending."""
    if not model_dir.is_dir():
        return []
    found = [
        int(p.name)
        for p in model_dir.iterdir()
        if _VERSION.match(p.name) and (p / "saved_model.pb").is_file()
    ]
    return sorted(found)


def next_version(model_dir: Path) -> int:
    """One above the highest existing version (numeric folders, complete or not), or 1."""
    taken = (
        [int(p.name) for p in model_dir.iterdir() if _VERSION.match(p.name)]
        if (model_dir.is_dir())
        else []
    )
    return max(taken, default=0) + 1


def export_model(
    model: keras.Model, base: Path, model_name: str, version: int | None = None
) -> Path:
    """Write `model` as `<base>/<model_name>/<version>/`; returns that folder.

    `version` defaults to the next free number; an existing version is never overwritten
    (a running server may have it loaded).
    """
    import keras
    import tensorflow as tf

    model_dir = base / model_name
    model_dir.mkdir(parents=True, exist_ok=True)
    number = next_version(model_dir) if version is None else version
    if number < 1:
        raise ValueError(f"version must be a positive integer, got {number}")
    target = model_dir / str(number)
    if target.exists():
        raise FileExistsError(f"{target} exists; versions are immutable, pick another")
    _, height, width, channels = model.inputs[0].shape
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        name=SIGNATURE,
        fn=lambda crops: {OUTPUT: tf.cast(model(crops, training=False), tf.float32)},
        input_signature=[tf.TensorSpec([None, height, width, channels], tf.uint8, name=INPUT)],
    )
    staging = model_dir / f".{number}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    archive.write_out(str(staging), verbose=False)
    staging.rename(target)
    return target


def export_weights(
    weights_dir: Path,
    base: Path,
    model_name: str,
    version: int | None = None,
    input_px: int = 128,
) -> Path:
    """Build the classifier, load compact weights from `weights_dir`, export it."""
    from serving.model import build_classifier
    from serving.weights import load_compact

    model = build_classifier(input_px=input_px, weights="none")
    load_compact(model, weights_dir)
    return export_model(model, base, model_name, version)
