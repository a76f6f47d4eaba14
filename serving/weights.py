"""Compact, backend-neutral weight files: float16 shards of named arrays.

The shipped classifier is committed to the repository, so it must be small (float16 halves
Xception's 90 MB) and split into shards that each stay under file-size limits. Batch-norm
statistics keep float32: their tiny variances would lose precision in float16.
"""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import numpy.typing as npt

MANIFEST = "weights.json"


def _keep_float32(name: str) -> bool:
    return "moving_" in name


def save_compact(model: keras.Model, directory: Path, max_shard_mb: float = 15.0) -> list[Path]:
    """Write `model`'s weights as npz shards plus a JSON manifest; returns the files written."""
    directory.mkdir(parents=True, exist_ok=True)
    shards: list[dict[str, npt.NDArray[np.generic]]] = [{}]
    shard_bytes = 0
    order = []
    for index, variable in enumerate(model.weights):
        key = f"{index:04d}"
        value = keras.ops.convert_to_numpy(variable)
        value = value.astype(np.float32 if _keep_float32(variable.path) else np.float16)
        if shard_bytes + value.nbytes > max_shard_mb * 1e6 and shards[-1]:
            shards.append({})
            shard_bytes = 0
        shards[-1][key] = value
        shard_bytes += value.nbytes
        order.append({"key": key, "path": variable.path, "shape": list(value.shape)})
    written = []
    for number, shard in enumerate(shards):
        path = directory / f"weights-{number:02d}.npz"
        np.savez_compressed(path, **shard)  # type: ignore[arg-type]
        written.append(path)
    manifest = {"variables": order, "shards": [p.name for p in written]}
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=1))
    return [*written, directory / MANIFEST]


def load_compact(model: keras.Model, directory: Path) -> None:
    """Load weights written by `save_compact` into a model of the same architecture."""
    manifest = json.loads((directory / MANIFEST).read_text())
    arrays: dict[str, npt.NDArray[np.generic]] = {}
    for name in manifest["shards"]:
        with np.load(directory / name) as shard:
            arrays.update({k: shard[k] for k in shard.files})
    entries = manifest["variables"]
    if len(entries) != len(model.weights):
        raise ValueError(
            f"{directory}: {len(entries)} weights stored, model has {len(model.weights)}"
        )
    for entry, variable in zip(entries, model.weights, strict=True):
        value = arrays[entry["key"]]
        if tuple(value.shape) != tuple(variable.shape):
            raise ValueError(
                f"{directory}: {entry['path']} has shape {value.shape}, "
                f"model expects {tuple(variable.shape)}"
            )
        variable.assign(value.astype(variable.dtype))
