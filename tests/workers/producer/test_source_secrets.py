"""Secret references in camera sources: resolved at start-up from the environment or a mounted
file, an unresolvable one fails start-up naming it, and no resolved credential reaches a log
line, a metric or a repr (a real producer against an RTSP camera that requires a login)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner

from runtime.kafka import KafkaSettings
from runtime.logs import redact_text
from tests.workers.producer.conftest import RTSP_LOGIN, RtspServer, free_port
from workers.producer.config import CameraConfig, ConfigError, parse_cameras
from workers.producer.main import cli
from workers.producer.source_secrets import SecretReferenceError


def test_env_and_file_references_are_resolved_and_never_shown(tmp_path: Path) -> None:
    secret_file = tmp_path / "cam-08"
    secret_file.write_text("from/a file+7\n")
    (env_camera, file_camera) = parse_cameras(
        "cameras:\n"
        "  - {id: cam-07, source: 'rtsp://viewer:${CAM_07_PASSWORD}@cam-07.invalid/s1'}\n"
        f"  - {{id: cam-08, source: 'rtsp://viewer:${{file:{secret_file}}}@cam-08.invalid/s1'}}\n",
        "cameras.yaml",
    )
    resolved = env_camera.resolved({"CAM_07_PASSWORD": "from-the-env-7"})
    assert resolved.location == "rtsp://viewer:from-the-env-7@cam-07.invalid/s1"
    assert file_camera.resolved({}).location == "rtsp://viewer:from/a file+7@cam-08.invalid/s1"
    assert "from-the-env-7" not in repr(resolved) + str(resolved.model_dump())
    assert resolved.source == env_camera.source  # the reference, as written
    # registered with the log redaction: masked wherever a library might echo it
    assert redact_text("open from-the-env-7 / from%2Fa%20file%2B7?") == "open *** / ***?"


def test_a_whole_source_can_be_a_secret(tmp_path: Path) -> None:
    camera = CameraConfig(id="cam-09", source="${CAM_09_URL}")
    resolved = camera.resolved({"CAM_09_URL": "rtsps://u:p4ss-word@cam-09.invalid/s"})
    assert resolved.kind.value == "rtsp"


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, "camera cam-07: secret ${CAM_07_PASSWORD} is not set in the environment"),
        ({"CAM_07_PASSWORD": ""}, "secret ${CAM_07_PASSWORD} is not set in the environment"),
    ],
)
def test_an_unset_reference_names_itself(environ: dict[str, str], expected: str) -> None:
    camera = CameraConfig(id="cam-07", source="rtsp://v:${CAM_07_PASSWORD}@h/s")
    with pytest.raises(SecretReferenceError) as raised:
        camera.resolved(environ)
    assert expected in str(raised.value)


def test_an_unreadable_or_empty_secret_file_names_itself(tmp_path: Path) -> None:
    missing = CameraConfig(id="c", source=f"rtsp://v:${{file:{tmp_path}/nope}}@h/s")
    with pytest.raises(SecretReferenceError, match=r"cannot read secret \$\{file:.*/nope\}"):
        missing.resolved({})
    (tmp_path / "empty").write_text("\n")
    empty = CameraConfig(id="c", source=f"rtsp://v:${{file:{tmp_path}/empty}}@h/s")
    with pytest.raises(SecretReferenceError, match="is an empty file"):
        empty.resolved({})


@pytest.mark.parametrize("source", ["rtsp://v:${CAM-7}@h/s", "rtsp://v:${CAM_7@h/s", "${file:x}"])
def test_a_malformed_reference_fails_when_the_file_is_parsed(source: str) -> None:
    with pytest.raises(ConfigError, match="malformed secret reference"):
        parse_cameras(f"cameras: [{{id: c, source: '{source}'}}]", "cameras.yaml")


def test_a_missing_reference_fails_start_up_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CAM_07_PASSWORD", raising=False)
    config = tmp_path / "cameras.yaml"
    config.write_text("cameras:\n  - {id: cam-07, source: 'rtsp://v:${CAM_07_PASSWORD}@h/s'}\n")
    result = CliRunner().invoke(cli, ["--config", str(config), "--runtime-health-port", "0"])
    assert result.exit_code == 1
    (line,) = result.output.strip().splitlines()
    assert line == (
        "Error: camera cam-07: secret ${CAM_07_PASSWORD} is not set in the environment "
        "(or is empty)"
    )


def _metrics(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return str(response.read().decode())


def _sent(metrics: str, camera: str) -> float:
    prefix = f'maskwatch_producer_frames_sent_total{{camera="{camera}"}} '
    return sum(
        float(line[len(prefix) :]) for line in metrics.splitlines() if line.startswith(prefix)
    )


@pytest.mark.integration
def test_a_real_producer_logs_no_resolved_credential(
    rtsp_server_with_login: RtspServer, kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    """cam-ok logs in with the password from the environment (frames reach Kafka: the
    reference was resolved); cam-refused reads a wrong one from a file and is refused, so
    its failure is logged. Neither password may appear in stderr or /metrics."""
    user, password = RTSP_LOGIN
    wrong = tmp_path / "wrong-password"
    wrong.write_text("Not-the-pw-42\n")
    server = f"127.0.0.1:{rtsp_server_with_login.port}/cam"
    config = tmp_path / "cameras.yaml"
    config.write_text(
        "defaults: {fps: 2}\ncameras:\n"
        f"  - {{id: cam-ok, source: 'rtsp://{user}:${{CAM_OK_PASSWORD}}@{server}'}}\n"
        f"  - {{id: cam-refused, source: 'rtsp://{user}:${{file:{wrong}}}@{server}'}}\n"
    )
    health_port = free_port()
    env = {
        **os.environ,
        "CAM_OK_PASSWORD": password,
        "MASKWATCH_KAFKA_FRAMES_TOPIC": kafka_settings.frames_topic,
        "MASKWATCH_PRODUCER_RUNTIME__HEALTH_PORT": str(health_port),
        "MASKWATCH_PRODUCER_BACKOFF_INITIAL_S": "0.5",
        "MASKWATCH_PRODUCER_BACKOFF_MAX_S": "2",
    }
    process = subprocess.Popen(
        [sys.executable, "-c", "from workers.cli import main; main()", "producer",
         "--config", str(config)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    scraped = ""
    try:
        deadline = time.monotonic() + 180  # a bound for a loaded machine; usually seconds
        while time.monotonic() < deadline and process.poll() is None:
            try:
                scraped = _metrics(health_port)
            except OSError:
                scraped = ""
            if _sent(scraped, "cam-ok") >= 3 and "cam-refused" in scraped:
                break
            time.sleep(0.5)
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output[-3000:]
    assert _sent(scraped, "cam-ok") >= 3, output[-3000:]
    assert _sent(scraped, "cam-refused") == 0
    events = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    refused = [e for e in events if e["event"] == "camera_source_failed"]
    assert refused and {e["camera_id"] for e in refused} == {"cam-refused"}
    for secret in (password, "Not-the-pw-42"):
        assert secret not in output, "a camera credential reached a log line"
        assert secret not in scraped, "a camera credential reached a metric"
