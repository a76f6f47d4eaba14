"""The `maskwatch-schemas` distribution, built from schemas/ and installed alone into a fresh
virtual environment, decodes real results read from the broker, and nothing of maskwatch,
TensorFlow, ONNX Runtime or a Kafka client is importable there.

Offline where possible: the wheel is built without build isolation and installed with
`--no-index`; pydantic's wheels come from ~/.cache/maskwatch/wheels, filled from PyPI
(`pip download`) only when they are missing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest
from kafka import KafkaConsumer, TopicPartition

import schemas
from runtime.kafka import KafkaSettings, make_producer
from schemas.common import encode
from tests.conftest import REPO_ROOT
from workers.aggregator.synthetic import stream

pytestmark = pytest.mark.integration
PACKAGE = REPO_ROOT / "packages" / "maskwatch-schemas"
WHEELS = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "maskwatch" / "wheels"
ALLOWED = {
    "maskwatch-schemas",
    "pydantic",
    "pydantic-core",
    "annotated-types",
    "typing-extensions",
    "typing-inspection",
}

CHECK = """
import importlib.metadata as md, importlib.util, json, sys
from importlib.resources import files
import schemas
from schemas.common import SchemaError, decode
from schemas.result import SUPPORTED_RESULT_VERSIONS, FrameResult
blocked = ["tensorflow", "onnxruntime", "workers", "serving", "kafka", "cv2", "click"]
decoded, errors = [], []
for line in open(sys.argv[1], "rb"):
    try:
        r = decode(FrameResult, line.strip(), SUPPORTED_RESULT_VERSIONS)
        decoded.append([r.camera_id, r.seq, r.counts.faces, r.counts.with_mask])
    except SchemaError as error:
        errors.append(error.code.value)
schema = json.loads((files("schemas") / "json" / "frame_result.json").read_text())
print(json.dumps({
    "importable": [n for n in blocked if importlib.util.find_spec(n) is not None],
    "distributions": sorted(
        d.metadata["Name"].lower().replace("_", "-") for d in md.distributions()
    ),
    "version": md.version("maskwatch-schemas"),
    "schemas_file": schemas.__file__,
    "schema_title": schema["title"],
    "decoded": decoded,
    "errors": errors,
}))
"""


def pip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def build_wheel(dist: Path) -> Path:
    """With this environment's setuptools (offline); an isolated build (PyPI) if it has none."""
    built = pip("wheel", "--no-deps", "--no-build-isolation", str(PACKAGE), "-w", str(dist))
    if built.returncode != 0:
        built = pip("wheel", "--no-deps", str(PACKAGE), "-w", str(dist))
    assert built.returncode == 0, built.stderr
    (wheel,) = dist.glob("maskwatch_schemas-*.whl")
    return wheel


def install(venv: Path, dist: Path) -> None:
    """Into `venv` (made without pip: the outer pip installs with --python), offline first."""
    command = ["--python", str(venv / "bin" / "python"), "install", "--no-index"]
    command += ["--find-links", str(dist), "--find-links", str(WHEELS), "maskwatch-schemas"]
    if pip(*command).returncode != 0:
        dependencies = tomllib.loads((PACKAGE / "pyproject.toml").read_text())["project"]
        fetched = pip("download", "--only-binary=:all:", "--dest", str(WHEELS),
                      *dependencies["dependencies"])  # fmt: skip
        assert fetched.returncode == 0, fetched.stderr
    installed = pip(*command)
    assert installed.returncode == 0, installed.stderr


def results_from_topic(settings: KafkaSettings, out: Path) -> int:
    """Publish results and a bad record, read them back from the topic, one value a line."""
    producer = make_producer(settings, "test-schemas-package")
    results = stream(["cam-1", "cam-2"], 20, time.time() - 60)
    for r in results:
        producer.send(settings.results_topic, key=r.camera_id.encode(), value=encode(r))
    producer.send(settings.results_topic, key=b"cam-1", value=b'{"schema_version": 7}')
    producer.flush(timeout=30)
    producer.close()
    consumer = KafkaConsumer(bootstrap_servers=settings.bootstrap_servers, group_id=None)
    tps = [TopicPartition(settings.results_topic, p) for p in range(settings.results_partitions)]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    values: list[bytes] = []
    deadline = time.monotonic() + 30
    while len(values) < len(results) + 1 and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=1000).values():
            values += [record.value for record in records]
    consumer.close()
    out.write_bytes(b"".join(v + b"\n" for v in values))
    return len(results)


def test_fresh_venv_decodes_results_with_only_the_contracts_package(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    wheel = build_wheel(tmp_path / "dist")
    assert wheel.name == f"maskwatch_schemas-{schemas.__version__}-py3-none-any.whl"
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    install(venv, tmp_path / "dist")
    values = tmp_path / "values.jsonl"
    count = results_from_topic(kafka_settings, values)

    run = subprocess.run(
        [str(venv / "bin" / "python"), "-I", "-c", CHECK, str(values)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["importable"] == []
    assert set(report["distributions"]) <= ALLOWED, report["distributions"]
    assert "maskwatch" not in report["distributions"]
    assert report["version"] == schemas.__version__
    assert Path(report["schemas_file"]).is_relative_to(venv)
    assert report["schema_title"] == "FrameResult"
    assert len(report["decoded"]) == count
    assert {(c, s) for c, s, *_ in report["decoded"]} == {
        (c, s) for c in ("cam-1", "cam-2") for s in range(20)
    }
    assert report["errors"] == ["unsupported_schema_version"]

    out = tmp_path / "json"
    exported = subprocess.run(
        [str(venv / "bin" / "python"), "-I", "-m", "schemas.export", str(out)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert exported.returncode == 0, exported.stderr
    shipped = Path(schemas.__file__).parent / "json"
    assert {p.name: p.read_text() for p in out.glob("*.json")} == {
        p.name: p.read_text() for p in shipped.glob("*.json")
    }  # the package regenerates the very files the repository ships
