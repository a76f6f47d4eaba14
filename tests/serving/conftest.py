"""Fixtures for the model server tests: tiny exported models and servers on free ports.

A tiny classifier (global average pool → dense softmax on 8 px crops) exports and loads in
well under a second, so the gRPC tests exercise the real export → SavedModel → server →
client path without paying for Xception.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import keras
import numpy as np
import numpy.typing as npt
import pytest

from runtime.settings import RuntimeSettings
from serving.export import export_model
from serving.server import ModelServer, ServeSettings

TINY_PX = 8
TINY_NAME = "tiny"


def build_tiny(px: int = TINY_PX, seed: int = 0) -> keras.Model:
    """uint8 RGB crops → softmax over 2 classes; `seed` picks distinguishable weights."""
    crops = keras.Input(shape=(px, px, 3), dtype="uint8", name="crops")
    x = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0)(keras.ops.cast(crops, "float32"))
    x = keras.layers.GlobalAveragePooling2D()(x)
    dense = keras.layers.Dense(2, activation="softmax", name="probabilities")
    out = dense(x)
    model = keras.Model(crops, out)
    rng = np.random.default_rng(seed)
    dense.set_weights([rng.normal(0, 2, (3, 2)).astype("float32"), np.zeros(2, "float32")])
    return model


def random_crops(n: int, px: int = TINY_PX, seed: int = 0) -> npt.NDArray[np.uint8]:
    return np.random.default_rng(seed).integers(0, 256, (n, px, px, 3), dtype=np.uint8)


def expected(model: keras.Model, crops: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
    """The in-process answer the server must reproduce."""
    return np.asarray(model(crops, training=False))


@contextlib.contextmanager
def running_server(
    base: Path, wait_version: int | None = 1, **overrides: Any
) -> Iterator[ModelServer]:
    """A ModelServer on a free port (no HTTP side), stopped on exit."""
    settings = ServeSettings(
        model_base=base,
        host="127.0.0.1",
        port=0,
        runtime=RuntimeSettings(health_port=None),
        **{"model_name": TINY_NAME, "poll_s": 0.1, "grace_s": 1.0, **overrides},
    )
    server = ModelServer(settings)
    server.start()
    try:
        if wait_version is not None:
            wait_for(lambda: _serving(server) == wait_version, f"version {wait_version} loaded")
        yield server
    finally:
        server.stop(grace_s=0.5)


def _serving(server: ModelServer) -> int | None:
    current = server.watcher.current
    return current.version if current else None


def wait_for(condition: Any, what: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


class Tiny:
    """The helpers above, for test modules (conftest is not importable as a module)."""

    px = TINY_PX
    name = TINY_NAME
    build = staticmethod(build_tiny)
    crops = staticmethod(random_crops)
    expected = staticmethod(expected)
    serve = staticmethod(running_server)
    wait_for = staticmethod(wait_for)


@pytest.fixture(scope="session")
def tiny() -> type[Tiny]:
    return Tiny


@pytest.fixture(scope="session")
def tiny_model() -> keras.Model:
    return build_tiny()


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory: pytest.TempPathFactory, tiny_model: keras.Model) -> Path:
    """A model base holding `tiny/1`, shared read-only by the session's servers."""
    base = tmp_path_factory.mktemp("models")
    export_model(tiny_model, base, TINY_NAME, 1)
    return base


@pytest.fixture(scope="module")
def server(tiny_base: Path) -> Iterator[ModelServer]:
    with running_server(tiny_base) as running:
        yield running


@pytest.fixture()
def channel(server: ModelServer) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as chan:
        yield chan
