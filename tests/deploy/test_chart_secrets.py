"""Secrets in the chart beyond Kafka: the in-chart Redis's generated password and its TLS,
the Redis clients reading both from Secret files, and cameras.yaml from a Secret."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tests.deploy.conftest import VALUE_SETS, Manifest, Render, component, run_template

DEFAULT = next(p for p in VALUE_SETS if p.name == "values-default.yaml")
PRODUCTION = next(p for p in VALUE_SETS if p.name == "values-production.yaml")
REDIS_CLIENTS = {
    "aggregator": "MASKWATCH_AGGREGATOR",
    "api": "MASKWATCH_API",
    "producer": "MASKWATCH_PRODUCER_HEALTH_",  # camera health (producer.cameraHealth)
}
"""Workloads that talk to Redis, and the prefix of their Redis settings."""


def _workload(manifests: list[Manifest], name: str) -> Manifest:
    (workload,) = [
        m for m in manifests if m["kind"] in {"Deployment", "StatefulSet"} and component(m) == name
    ]
    return workload


def _main(manifest: Manifest) -> dict[str, Any]:
    return dict(manifest["spec"]["template"]["spec"]["containers"][0])


def _env(manifest: Manifest) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in _main(manifest)["env"]}


def _secret_volumes(manifest: Manifest) -> dict[str, str]:
    volumes = manifest["spec"]["template"]["spec"]["volumes"]
    return {v["name"]: v["secret"]["secretName"] for v in volumes if "secret" in v}


def _mounted(manifest: Manifest, file: str) -> bool:
    return any(file.startswith(m["mountPath"] + "/") for m in _main(manifest)["volumeMounts"])


def _everything_but_secrets(manifests: list[Manifest]) -> str:
    return yaml.safe_dump_all([m for m in manifests if m["kind"] != "Secret"])


def test_the_in_chart_redis_requires_a_generated_password_the_clients_read_as_a_file(
    render: Render, tmp_path: Path
) -> None:
    manifests = render(DEFAULT)
    (auth,) = [m for m in manifests if m["kind"] == "Secret" and component(m) == "redis"]
    password = auth["stringData"]["password"]
    assert len(password) == 32 and password.isalnum()
    assert password not in _everything_but_secrets(manifests)  # not in args, env or ConfigMap

    redis = _main(_workload(manifests, "redis"))
    assert redis["command"] == ["sh", "-c"]
    assert "requirepass" in redis["args"][0] and "/etc/redis-auth/password" in redis["args"][0]
    (cli_auth,) = [e for e in redis["env"] if e["name"] == "REDISCLI_AUTH"]
    assert cli_auth["valueFrom"]["secretKeyRef"]["name"] == auth["metadata"]["name"]
    assert _secret_volumes(_workload(manifests, "redis"))["auth"] == auth["metadata"]["name"]

    for name, prefix in REDIS_CLIENTS.items():
        client = _workload(manifests, name)
        env = _env(client)
        assert env[f"{prefix}_REDIS_URL"].startswith("redis://")
        password_file = env[f"{prefix}_REDIS_SECURITY__PASSWORD_FILE"]
        assert _mounted(client, password_file), name
        assert _secret_volumes(client)["redis-auth"] == auth["metadata"]["name"], name
        assert f"{prefix}_REDIS_SECURITY__PASSWORD" not in env, "a password as plain env"

    own = render(DEFAULT, {"redis": {"passwordSecret": {"name": "mine"}}}, tmp=tmp_path)
    assert not [m for m in own if m["kind"] == "Secret" and component(m) == "redis"]
    assert _secret_volumes(_workload(own, "api"))["redis-auth"] == "mine"


def test_redis_tls_serves_only_tls_and_the_clients_trust_its_ca(
    render: Render, tmp_path: Path
) -> None:
    tls = {"redis": {"tls": {"enabled": True, "certSecret": "redis-tls"}}}
    manifests = render(DEFAULT, tls, tmp=tmp_path)
    redis = _workload(manifests, "redis")
    args = _main(redis)["args"]
    assert args[args.index("--port") + 1] == "0"  # no plaintext port
    assert args[args.index("--tls-port") + 1] == "6379"
    assert _secret_volumes(redis)["tls"] == "redis-tls"
    assert "--tls" in _main(redis)["readinessProbe"]["exec"]["command"]
    for name, prefix in REDIS_CLIENTS.items():
        client = _workload(manifests, name)
        env = _env(client)
        assert env[f"{prefix}_REDIS_URL"].startswith("rediss://"), name
        assert _mounted(client, env[f"{prefix}_REDIS_SECURITY__CA_FILE"]), name
        assert _secret_volumes(client)["redis-ca"] == "redis-tls", name


def test_redis_tls_without_a_certificate_is_refused(helm: Path, tmp_path: Path) -> None:
    values = tmp_path / "tls.yaml"
    values.write_text(yaml.safe_dump({"redis": {"tls": {"enabled": True}}}))
    done = run_template(helm, "-f", str(DEFAULT), "-f", str(values))
    assert done.returncode != 0
    assert "redis.tls.enabled with the in-chart Redis needs redis.tls.certSecret" in done.stderr


def test_production_values_take_cameras_and_redis_credentials_from_secrets(
    render: Render,
) -> None:
    manifests = render(PRODUCTION)
    producer = _workload(manifests, "producer")
    volumes = _secret_volumes(producer)
    (cameras,) = [m for m in manifests if m["kind"] == "Secret" and component(m) == "producer"]
    assert volumes["config"] == cameras["metadata"]["name"]
    assert "station-north-01" in cameras["stringData"]["cameras.yaml"]
    assert volumes["camera-credentials"] == "maskwatch-camera-credentials"
    assert _mounted(producer, "/run/secrets/cameras/station-north-01")
    assert _mounted(producer, _env(producer)["MASKWATCH_PRODUCER_CONFIG"])
    for config in (m for m in manifests if m["kind"] == "ConfigMap"):
        assert "cameras.yaml" not in config["data"], "cameras in a ConfigMap"
    for name, prefix in REDIS_CLIENTS.items():
        client = _workload(manifests, name)
        env = _env(client)
        assert env[f"{prefix}_REDIS_URL"].startswith("rediss://")
        assert _secret_volumes(client)["redis-auth"] == "maskwatch-redis"
        assert _secret_volumes(client)["redis-ca"] == "maskwatch-redis-ca"


def test_cameras_default_to_the_config_map(render: Render) -> None:
    manifests = render(DEFAULT)
    assert "config" not in _secret_volumes(_workload(manifests, "producer"))
    (config,) = [m for m in manifests if m["kind"] == "ConfigMap" and component(m) == "config"]
    assert "cameras.yaml" in config["data"]


def test_the_api_metrics_are_scraped_on_its_health_port_not_the_public_one(
    render: Render, tmp_path: Path
) -> None:
    manifests = render(DEFAULT, {"serviceMonitor": {"enabled": True}}, tmp=tmp_path)
    api = _workload(manifests, "api")
    ports = {p["name"]: p["containerPort"] for p in _main(api)["ports"]}
    assert _env(api)["MASKWATCH_API_RUNTIME__HEALTH_PORT"] == str(ports["metrics"])
    services = {m["metadata"]["name"]: m for m in manifests if m["kind"] == "Service"}
    public = services["maskwatch-api"]
    assert "maskwatch.io/metrics" not in public["metadata"]["labels"]
    assert [p["targetPort"] for p in public["spec"]["ports"]] == ["http"]
    assert services["maskwatch-api-metrics"]["spec"]["ports"][0]["targetPort"] == "metrics"
    (monitor,) = [m for m in manifests if m["kind"] == "ServiceMonitor"]
    assert "http" not in {e["port"] for e in monitor["spec"]["endpoints"]}
    (policy,) = [
        m
        for m in manifests
        if m["kind"] == "NetworkPolicy" and m["metadata"]["name"] == "maskwatch-api"
    ]
    public_rule, metrics_rule = policy["spec"]["ingress"]
    assert public_rule["ports"] == [{"port": "http", "protocol": "TCP"}]
    assert metrics_rule["ports"] == [{"port": "metrics", "protocol": "TCP"}]
