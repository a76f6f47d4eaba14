"""Export the classifier as a SavedModel in TensorFlow Serving's layout.

TF Serving (and `maskwatch serve`) watch `<base>/<model_name>/` and serve the highest
numeric subfolder, so a new model ships by writing a new version folder next to the old one.
A version is written under a hidden temporary name and renamed into place at the end: a
server polling the folder never sees a half-written version.

The `serving_default` signature takes uint8 RGB crops `[N, S, S, 3]` named `crops` and
returns `probabilities` float32 `[N, 2]` in `schemas.model_server.CLASSES` order. Normalisation
is part of the Keras model, so every client sends raw pixels.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from schemas.model_server import INPUT, OUTPUT, SIGNATURE

if TYPE_CHECKING:
    import keras

    from serving.export_openvino import OpenVinoExport

PROVENANCE = "assets.extra/maskwatch_export.json"
"""Inside a version folder: what it was exported from (TF Serving ignores assets.extra)."""
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


def provenance(model_dir: Path) -> dict[str, object] | None:
    """What the newest version was exported from (None: no version, or no record)."""
    found = versions(model_dir)
    if not found:
        return None
    record = model_dir / str(found[-1]) / PROVENANCE
    if not record.is_file():
        return None
    loaded: dict[str, object] = json.loads(record.read_text())
    return loaded


def weights_source(weights_dir: Path, input_px: int, openvino: bool = False) -> dict[str, object]:
    """Identity of an export: a digest of the weights' manifest and every shard's bytes, the
    input size, and whether OpenVINO IR is part of it."""
    from serving.weights import MANIFEST

    manifest = weights_dir / MANIFEST
    if not manifest.is_file():
        raise FileNotFoundError(
            f"no classifier weights at {weights_dir} ({MANIFEST} missing): "
            "train with `maskwatch train` or pass --weights"
        )
    digest = hashlib.sha256(manifest.read_bytes())
    for shard in json.loads(manifest.read_text())["shards"]:
        digest.update((weights_dir / shard).read_bytes())
    return {"weights_sha256": digest.hexdigest(), "input_px": input_px, "openvino": openvino}


def export_model(
    model: keras.Model,
    base: Path,
    model_name: str,
    version: int | None = None,
    source: dict[str, object] | None = None,
    openvino: OpenVinoExport | None = None,
) -> Path:
    """Write `model` as `<base>/<model_name>/<version>/`; returns that folder.

    With `openvino`, the OpenVINO IR variants are written beside the SavedModel and gated on
    held-out accuracy (`serving.export_openvino`); a failed gate publishes nothing.
    `version` defaults to the next free number; an existing version is never overwritten
    (a running server may have it loaded). `source` is recorded in the version's
    `assets.extra/` (see `provenance`). A TF Serving warm-up request goes there too, so the
    official server runs one batch before it reports the version available.
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
    extra = staging / "assets.extra"
    extra.mkdir()
    _write_warmup(extra / "tf_serving_warmup_requests", model_name, (1, height, width, channels))
    (staging / PROVENANCE).write_text(json.dumps(source or {}, indent=1, sort_keys=True))
    if openvino is not None:
        from serving.export_openvino import write_openvino

        try:
            write_openvino(staging, openvino)
        except Exception:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    staging.rename(target)
    return target


def _write_warmup(path: Path, model_name: str, shape: tuple[int, ...]) -> None:
    """One Predict request of black crops, in TF Serving's warm-up file format."""
    import numpy as np
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    from schemas.model_server.tensors import fill_tensor

    log = prediction_log_pb2.PredictionLog()
    request = log.predict_log.request
    request.model_spec.name = model_name
    request.model_spec.signature_name = SIGNATURE
    fill_tensor(request.inputs[INPUT], np.zeros(shape, np.uint8))
    with tf.io.TFRecordWriter(str(path)) as writer:
        writer.write(log.SerializeToString())


def export_weights(
    weights_dir: Path,
    base: Path,
    model_name: str,
    version: int | None = None,
    input_px: int = 128,
    openvino: OpenVinoExport | None = None,
) -> Path:
    """Build the classifier, load compact weights from `weights_dir`, export it."""
    from serving.model import build_classifier
    from serving.weights import load_compact

    source = weights_source(weights_dir, input_px, openvino is not None)
    model = build_classifier(input_px=input_px, weights="none")
    load_compact(model, weights_dir)
    return export_model(model, base, model_name, version, source, openvino)
