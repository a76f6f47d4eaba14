"""The services that run on every node never import TensorFlow (~600 MB resident, seconds),
and `maskwatch --help` / `maskwatch detector --help` import none of the worker's runtime
dependencies (Kafka, ONNX Runtime, numpy, OpenCV, gRPC, protobuf, logging, metrics): they
are imported when the command runs, which keeps the help fast.

Each check runs in a fresh interpreter: in this test process those modules may already be
loaded by other tests, which would hide an import.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("tensorflow", "tensorflow_serving", "keras", "tf_keras")
WORKER_RUNTIME = (
    "kafka",
    "onnxruntime",
    "numpy",
    "cv2",
    "grpc",
    "google",  # protobuf
    "structlog",
    "prometheus_client",
    "redis",
    *HEAVY,
)
PROBE = """
import sys
{body}
heavy = sorted({{m.split(".")[0] for m in sys.modules}} & set({heavy!r}))
print("HEAVY", ",".join(heavy))
"""
HELP = """
from click.testing import CliRunner
from workers.cli import main
result = CliRunner().invoke(main, {args!r})
assert result.exit_code == 0, result.output
"""


def heavy_modules_after(body: str, heavy: tuple[str, ...] = HEAVY) -> list[str]:
    """Which of the `heavy` top-level packages are loaded after running `body` in a fresh
    interpreter."""
    script = PROBE.format(body=body, heavy=heavy)
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    line = next(x for x in result.stdout.splitlines() if x.startswith("HEAVY"))
    return [m for m in line.removeprefix("HEAVY").strip().split(",") if m]


@pytest.mark.parametrize(
    "service", ["detector", "producer", "aggregator", "api", "results", "export", "train"]
)
def test_service_help_imports_no_tensorflow(service: str) -> None:
    assert heavy_modules_after(HELP.format(args=[service, "--help"])) == []


def test_the_detector_and_its_classifier_client_import_no_tensorflow() -> None:
    body = "import workers.detector.main, workers.detector.classifier, schemas.model_server.wire"
    assert heavy_modules_after(body) == []


def test_the_probe_sees_tensorflow_when_it_is_imported() -> None:
    """The check above can fail: the model server does import TensorFlow."""
    assert "tensorflow" in heavy_modules_after("import serving.servable")


@pytest.mark.parametrize("args", [["--help"], ["detector", "--help"]])
def test_help_loads_none_of_the_worker_runtime(args: list[str]) -> None:
    assert heavy_modules_after(HELP.format(args=args), WORKER_RUNTIME) == []


def test_importing_the_cli_modules_loads_none_of_the_worker_runtime() -> None:
    body = "import workers.cli, workers.detector.main, workers.detector.settings"
    assert heavy_modules_after(body, WORKER_RUNTIME) == []


def test_the_probe_sees_the_worker_runtime_when_the_worker_is_imported() -> None:
    """The two checks above can fail: the running detector does load these."""
    loaded = heavy_modules_after("import workers.detector.app", WORKER_RUNTIME)
    assert {"kafka", "numpy", "cv2", "grpc", "google", "structlog"} <= set(loaded)
