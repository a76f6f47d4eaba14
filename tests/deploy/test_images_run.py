"""The built images run the pipeline with the chart's settings, as the chart runs them.

deploy/images/build.sh builds (or reuses, when nothing changed) the producer, detector,
aggregator and api images; the chart is rendered with values pointing at the local stack and
per-test topics, Redis prefix and ports, and each workload's container is started with podman
exactly as rendered (tests/deploy/pods.py: env, ConfigMap, tmpfs, non-root user, read-only
root filesystem, no capabilities, no privilege escalation) over host networking. The only
addition is the sample frames: a few crowd photos from ../shared, mounted read-only.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml

from runtime.kafka import KafkaSettings
from schemas.redis_state import Keys, counters_of
from tests.conftest import IN_CI
from tests.deploy.conftest import Manifest, Render
from tests.deploy.pods import BUILD_SCRIPT, PodRun, kube_play_documents, pod_run, podman, workload
from tests.devtools.test_run import free_port

# The first test's setup builds the images: cold, that is many minutes (docs/notes/issue-20.md).
pytestmark = [
    pytest.mark.integration,
    pytest.mark.images,
    pytest.mark.heavy,
    pytest.mark.timeout(3600),
]

SERVICES = ("producer", "detector", "aggregator", "api")
FRAMES_IN_CONTAINER = "/data/crowd"
REQUIRED_SECURITY = {
    "--user=10001:10001",
    "--read-only",
    "--cap-drop=ALL",
    "--security-opt=no-new-privileges",
}
PIPELINE_DEADLINE_S = 300
KUBE_PLAYED = ("detector", "aggregator")
# user, read-only root filesystem, effective capabilities, security options
INSPECT_SECURITY = (
    "{{.Config.User}} {{.HostConfig.ReadonlyRootfs}} {{.EffectiveCaps}} {{.HostConfig.SecurityOpt}}"
)


@pytest.fixture(scope="session")
def images() -> dict[str, int]:
    """Build the four service images (cached layers are reused): image name -> size in bytes."""
    started = time.monotonic()
    done = subprocess.run(
        ["bash", str(BUILD_SCRIPT), *SERVICES],
        capture_output=True,
        text=True,
        timeout=3000,
        check=False,
    )
    if done.returncode != 0:
        message = f"deploy/images/build.sh failed:\n{done.stderr[-5000:]}"
        if not IN_CI and "apt" in done.stderr and "Permission denied" in done.stderr:
            pytest.skip(message)
        pytest.fail(message)
    sizes = {}
    for line in done.stdout.splitlines():
        kind, name, _, size = line.split()
        assert kind == "image", line
        sizes[name] = int(size)
    print(f"images built or reused in {time.monotonic() - started:.0f} s: {sizes}")
    return sizes


def chart_values(
    kafka: KafkaSettings, redis_prefix: str, unique_name: str, model_server: str, token: str
) -> dict[str, Any]:
    """Values for the local stack: what an operator would set to install against it."""
    cameras = [
        {"id": f"{unique_name}-cam-{i}", "source": f"folder:{FRAMES_IN_CONTAINER}", "slice": s}
        for i, s in enumerate(("0:3", "3:6"))
    ]
    own = {"MASKWATCH_AGGREGATOR_KEY_PREFIX": redis_prefix}
    return {
        # Resource (and so pod, container and podman secret) names of this test only.
        "fullnameOverride": f"mw-{unique_name[-8:]}",
        "kafka": {
            "bootstrapServers": kafka.bootstrap_servers,
            "topics": {
                "frames": kafka.frames_topic,
                "results": kafka.results_topic,
                "deadLetters": kafka.dead_letter_topic,
                "alerts": kafka.alerts_topic,
            },
            "framesPartitions": kafka.frames_partitions,
            "resultsPartitions": kafka.results_partitions,
            "createTopicsJob": {"enabled": False},
        },
        "redis": {"enabled": False, "url": "redis://127.0.0.1:6379/0"},
        "secrets": {"apiToken": token},
        "producer": {
            "healthPort": free_port(),
            "config": {"defaults": {"fps": 1.0, "loop": True}, "cameras": cameras},
        },
        "detector": {
            "replicas": 1,
            "healthPort": free_port(),
            "groupId": f"{unique_name}-detectors",
            # The chart's default is the model server's cluster Service name.
            "env": {"MASKWATCH_DETECTOR_MODEL_SERVER": model_server},
        },
        "modelServer": {"enabled": False},
        "aggregator": {
            "healthPort": free_port(),
            "env": {**own, "MASKWATCH_AGGREGATOR_GROUP_ID": f"{unique_name}-aggregator"},
        },
        "api": {
            "replicas": 1,
            "port": free_port(),
            "env": {"MASKWATCH_API_KEY_PREFIX": redis_prefix},
        },
    }


@pytest.fixture
def containers(unique_name: str) -> Iterator[list[str]]:
    """Names of the containers a test starts; removed afterwards (logs printed on failure)."""
    names: list[str] = []
    yield names
    for name in names:
        logs = podman("logs", "--tail=40", name, check=False)
        print(f"--- {name}\n{logs.stdout[-4000:]}{logs.stderr[-4000:]}")
        podman("rm", "--force", "--time=10", name, check=False)


def _start(run: PodRun, tmp: Path, names: list[str], *extra: str) -> None:
    names.append(run.name)
    podman(*run.command(tmp / f"{run.name}.env", *extra))


def _get(url: str, token: str | None) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, ""


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _frames_per_camera(client: redis.Redis, keys: Keys, cameras: list[str]) -> dict[str, int]:
    counts = {}
    for camera in cameras:
        raw = client.hgetall(keys.camera_totals(camera))
        fields = {_text(k): _text(v) for k, v in raw.items()}
        totals = counters_of(fields)
        assert totals.faces == totals.with_mask + totals.without_mask, (camera, totals)
        counts[camera] = totals.frames
    return counts


def _wait_for_frames(
    client: redis.Redis, keys: Keys, cameras: list[str], containers: list[str]
) -> None:
    """Until every camera has frames counted in Redis; fails early if a container exits."""
    deadline = time.monotonic() + PIPELINE_DEADLINE_S
    counts: dict[str, int] = {}
    while time.monotonic() < deadline:
        counts = _frames_per_camera(client, keys, cameras)
        if all(counts.values()):
            return
        stopped = [name for name in containers if not _running(name)]
        assert not stopped, f"containers exited: {stopped}"
        time.sleep(3)
    pytest.fail(f"frames per camera after {PIPELINE_DEADLINE_S} s: {counts}")


def _running(name: str) -> bool:
    state = podman("inspect", "--format={{.State.Status}}", name, check=False).stdout.strip()
    return state == "running"


def test_pipeline_runs_from_the_images_with_the_charts_settings(
    images: dict[str, int],
    render: Render,
    tmp_path: Path,
    kafka_settings: KafkaSettings,
    redis_client: redis.Redis,
    redis_prefix: str,
    unique_name: str,
    model_server: str,
    shared_dir: Path,
    containers: list[str],
) -> None:
    token = secrets.token_hex(16)
    values = chart_values(kafka_settings, redis_prefix, unique_name, model_server, token)
    manifests: list[Manifest] = render(values, tmp=tmp_path)
    runs = {c: pod_run(manifests, c, tmp_path, f"{unique_name}-{c}") for c in SERVICES}
    for component, run in runs.items():
        assert run.image.split(":")[0] == f"maskwatch/{component}", run.image
        assert run.image in images, f"the chart runs {run.image}; built: {sorted(images)}"
        assert set(run.flags) >= REQUIRED_SECURITY, (component, run.flags)

    frames = f"--volume={shared_dir / 'data' / 'crowd' / 'images'}:{FRAMES_IN_CONTAINER}:ro"
    for component in ("detector", "aggregator", "api"):
        _start(runs[component], tmp_path, containers)
    _start(runs["producer"], tmp_path, containers, frames)

    cameras = [c["id"] for c in values["producer"]["config"]["cameras"]]
    api = f"http://127.0.0.1:{values['api']['port']}/api/v1/cameras"
    _wait_for_frames(redis_client, Keys(redis_prefix), cameras, containers)

    status, body = _get(api, token)
    assert status == 200, status
    assert {c["camera_id"] for c in json.loads(body)["cameras"]} == set(cameras)
    assert _get(api, None)[0] == 401  # the token came from the chart's Secret
    for component in ("producer", "detector", "aggregator"):
        port = values[component]["healthPort"]
        assert _get(f"http://127.0.0.1:{port}/healthz", None)[0] == 200, component
    assert all(_running(name) for name in containers)


def test_a_bad_setting_stops_the_container_at_start_with_a_readable_line(
    images: dict[str, int],
    render: Render,
    tmp_path: Path,
    kafka_settings: KafkaSettings,
    redis_prefix: str,
    unique_name: str,
    model_server: str,
    containers: list[str],
) -> None:
    values = chart_values(kafka_settings, redis_prefix, unique_name, model_server, "t")
    values["aggregator"]["healthPort"] = "not-a-port"  # mapped by the chart to the service's env
    run = pod_run(render(values, tmp=tmp_path), "aggregator", tmp_path, f"{unique_name}-bad")
    assert "not-a-port" in run.env.values()
    containers.append(run.name)
    done = podman(*run.command(tmp_path / "bad.env", detach=False), timeout_s=120, check=False)
    assert done.returncode not in (0, 124), done.returncode
    assert "invalid settings" in done.stderr, done.stderr[-2000:]
    lines = [line for line in done.stderr.splitlines() if "health_port" in line]
    assert any("valid integer" in line for line in lines), done.stderr[-2000:]


def test_kube_play_runs_the_charts_detector_and_aggregator(
    images: dict[str, int],
    render: Render,
    tmp_path: Path,
    kafka_settings: KafkaSettings,
    redis_client: redis.Redis,
    redis_prefix: str,
    unique_name: str,
    model_server: str,
    shared_dir: Path,
    containers: list[str],
) -> None:
    """`podman kube play` of the rendered detector and aggregator Deployments (and Secret);
    the producer runs as in the test above to feed them."""
    values = chart_values(kafka_settings, redis_prefix, unique_name, model_server, "t")
    manifests = render(values, tmp=tmp_path)
    played = tmp_path / "kube.yaml"
    played.write_text(yaml.safe_dump_all(kube_play_documents(manifests, KUBE_PLAYED)))
    secrets_created = [m["metadata"]["name"] for m in manifests if m["kind"] == "Secret"]
    try:
        podman("kube", "play", "--network=host", str(played), timeout_s=300)
        pods = [f"{workload(manifests, c)['metadata']['name']}-pod-0" for c in KUBE_PLAYED]
        containers.extend(f"{pod}-{c}" for pod, c in zip(pods, KUBE_PLAYED, strict=True))
        for name in containers:
            inspected = podman("inspect", "--format=" + INSPECT_SECURITY, name).stdout.split()
            assert inspected == ["10001:10001", "true", "[]", "[no-new-privileges]"], name
        frames = f"--volume={shared_dir / 'data' / 'crowd' / 'images'}:{FRAMES_IN_CONTAINER}:ro"
        producer = pod_run(manifests, "producer", tmp_path, f"{unique_name}-producer")
        _start(producer, tmp_path, containers, frames)
        cameras = [c["id"] for c in values["producer"]["config"]["cameras"]]
        _wait_for_frames(redis_client, Keys(redis_prefix), cameras, containers)
    finally:
        podman("kube", "down", str(played), timeout_s=120, check=False)
        for name in secrets_created:
            podman("secret", "rm", name, check=False)
