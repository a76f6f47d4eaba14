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
import os
import secrets
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import yaml

from runtime.kafka import KafkaSettings
from schemas.redis_state import Keys, counters_of
from tests.conftest import IN_CI
from tests.deploy.conftest import Manifest, Render
from tests.deploy.pods import (
    BUILD_SCRIPT,
    CONTAINERS_CONF,
    PodRun,
    kube_play_documents,
    pod_run,
    podman,
    workload,
)
from tests.devtools.test_run import free_port

# The first test's setup builds the images: cold, that is many minutes (docs/notes/issue-20.md).
pytestmark = [
    pytest.mark.integration,
    pytest.mark.images,
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
"""Upper bound of every wait below; each wait ends at the event it waits for, not at a time."""
SILENCE_S = 10
"""No announcement for this long: look whether a container has exited (then fail at once)."""
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


def _exited(containers: list[str]) -> list[str]:
    return [name for name in containers if not _running(name)]


def _running(name: str) -> bool:
    state = podman("inspect", "--format={{.State.Status}}", name, check=False).stdout.strip()
    return state == "running"


def _await_log_line(container: str, needle: str) -> None:
    """Until `container` logs a line containing `needle` (its log followed, not polled);
    fails when the container exits first or PIPELINE_DEADLINE_S passes."""
    follow = subprocess.Popen(
        ["podman", "logs", "--follow", container],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF)},
    )
    watchdog = threading.Timer(PIPELINE_DEADLINE_S, follow.kill)
    watchdog.start()
    seen: list[str] = []
    try:
        assert follow.stdout is not None
        for line in follow.stdout:
            if needle in line:
                return
            seen.append(line)
    finally:
        watchdog.cancel()
        follow.kill()
        follow.wait()
    pytest.fail(f"{container} never logged {needle!r}:\n{''.join(seen[-20:])}")


def _await_counted(
    client: redis.Redis, keys: Keys, cameras: list[str], containers: list[str]
) -> dict[str, int]:
    """Frames counted per camera once every camera has some, re-read each time the aggregator
    announces an applied batch on the updates channel (subscribed before the first read, so no
    announcement falls in between); fails early when a container exits."""
    pubsub = client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
    pubsub.subscribe(keys.updates)
    deadline = time.monotonic() + PIPELINE_DEADLINE_S
    try:
        counts = _frames_per_camera(client, keys, cameras)
        while not all(counts.values()) and time.monotonic() < deadline:
            if pubsub.get_message(timeout=SILENCE_S) is None:  # nothing applied for a while
                assert not _exited(containers), f"containers exited: {_exited(containers)}"
            counts = _frames_per_camera(client, keys, cameras)
    finally:
        pubsub.close()
    assert all(counts.values()), f"frames per camera after {PIPELINE_DEADLINE_S} s: {counts}"
    return counts


def _await_announced(url: str, token: str, cameras: list[str], containers: list[str]) -> None:
    """Until the API's event stream has announced every camera with a frame. The API keeps its
    view from Redis in its own task, so it lags the aggregator's writes: GET /cameras right
    after Redis had counts could still list none (the earlier flake). The stream pings every
    15 s, so a silent pipeline is noticed; fails early when a container exits."""
    deadline = time.monotonic() + PIPELINE_DEADLINE_S
    announced: set[str] = set()
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.stream("GET", url, headers=headers, timeout=SILENCE_S + 15) as reply:
        assert reply.status_code == 200, reply.status_code
        kind = ""
        for line in reply.iter_lines():
            if line.startswith("event:"):
                kind = line[6:].strip()
            elif line.startswith("data:") and kind == "cameras":
                summaries = json.loads(line[5:])["cameras"]
                announced |= {c["camera_id"] for c in summaries if c["latest"] is not None}
            elif line.startswith(":"):  # a ping: nothing announced for 15 s
                assert not _exited(containers), f"containers exited: {_exited(containers)}"
            if announced >= set(cameras) or time.monotonic() > deadline:
                break
    assert announced >= set(cameras), f"announced in {PIPELINE_DEADLINE_S} s: {announced}"


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
    api = f"http://127.0.0.1:{values['api']['port']}/api/v1"
    _await_log_line(runs["api"].name, "Application startup complete")
    # The stream's catch-up lists what the API already holds, so it may open at any time.
    _await_announced(f"{api}/stream", token, cameras, containers)

    # The API announced them from Redis: their counts are there, written with the summary.
    counts = _frames_per_camera(redis_client, Keys(redis_prefix), cameras)
    assert all(counts.values()), counts
    status, body = _get(f"{api}/cameras", token)
    assert status == 200, status
    assert {c["camera_id"] for c in json.loads(body)["cameras"]} == set(cameras)
    assert _get(f"{api}/cameras", None)[0] == 401  # the token came from the chart's Secret
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
        _await_counted(redis_client, Keys(redis_prefix), cameras, containers)
    finally:
        podman("kube", "down", str(played), timeout_s=120, check=False)
        for name in secrets_created:
            podman("secret", "rm", name, check=False)
