"""Kafka security in the chart: the same Secrets reach every Kafka client and KEDA, Strimzi
gets a TLS + SCRAM listener and a KafkaUser, and plaintext stays the default."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.deploy.conftest import VALUE_SETS, Manifest, Render, component, containers

STRIMZI = next(p for p in VALUE_SETS if p.name == "values-strimzi.yaml")
DEFAULT = next(p for p in VALUE_SETS if p.name == "values-default.yaml")
PRODUCTION = next(p for p in VALUE_SETS if p.name == "values-production.yaml")
KAFKA_CLIENTS = {"producer", "detector", "aggregator", "api", "topics"}


def _kind(manifests: list[Manifest], kind: str) -> list[Manifest]:
    return [m for m in manifests if m["kind"] == kind]


def _clients(manifests: list[Manifest]) -> dict[str, dict[str, Any]]:
    return {
        component(m): m
        for m in manifests
        if m["kind"] in {"Deployment", "StatefulSet", "Job"} and component(m) in KAFKA_CLIENTS
    }


def _env(manifest: Manifest) -> dict[str, str]:
    main = manifest["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value", "") for e in main["env"]}


def test_plaintext_is_the_default_and_mounts_nothing(render: Render) -> None:
    for manifest in _clients(render(DEFAULT)).values():
        assert _env(manifest)["MASKWATCH_KAFKA_SECURITY__PROTOCOL"] == "PLAINTEXT"
        volumes = manifest["spec"]["template"]["spec"].get("volumes", [])
        assert not {v["name"] for v in volumes} & {"kafka-auth", "kafka-ca"}


def test_strimzi_with_sasl_ssl_has_only_a_tls_scram_listener_and_a_user(
    render: Render, tmp_path: Path
) -> None:
    manifests = render(STRIMZI, {"keda": {"enabled": True, "maxReplicaCount": 12}}, tmp=tmp_path)
    (kafka,) = _kind(manifests, "Kafka")
    (listener,) = kafka["spec"]["kafka"]["listeners"]
    assert listener["tls"] is True and listener["port"] == 9093
    assert listener["authentication"] == {"type": "scram-sha-512"}
    assert kafka["spec"]["kafka"]["authorization"] == {"type": "simple"}
    (user,) = _kind(manifests, "KafkaUser")
    name = user["metadata"]["name"]
    assert user["spec"]["authentication"] == {"type": "scram-sha-512"}
    topics = {a["resource"]["name"] for a in user["spec"]["authorization"]["acls"]}
    assert "maskwatch.frames" in topics

    clients = _clients(manifests)
    assert set(clients) == KAFKA_CLIENTS - {"topics"}  # Strimzi's operator makes the topics
    for label, manifest in clients.items():
        env = _env(manifest)
        assert env["MASKWATCH_KAFKA_SECURITY__PROTOCOL"] == "SASL_SSL", label
        assert env["MASKWATCH_KAFKA_SECURITY__USERNAME"] == name, label
        assert env["MASKWATCH_KAFKA_BOOTSTRAP_SERVERS"].endswith(":9093"), label
        assert "MASKWATCH_KAFKA_SECURITY__PASSWORD" not in env, "a password as plain env"
        pod = manifest["spec"]["template"]["spec"]
        secrets = {
            v["name"]: v["secret"]["secretName"]
            for v in pod["volumes"]
            if "secret" in v and v["name"].startswith("kafka-")
        }
        assert secrets == {"kafka-auth": name, "kafka-ca": "maskwatch-cluster-ca-cert"}, label
        mounts = {m["mountPath"] for m in containers(manifest)[0]["volumeMounts"]}
        password_dir = env["MASKWATCH_KAFKA_SECURITY__PASSWORD_FILE"].rsplit("/", 1)[0]
        ca_dir = env["MASKWATCH_KAFKA_SECURITY__CA_FILE"].rsplit("/", 1)[0]
        assert {password_dir, ca_dir} <= mounts, label

    (auth,) = _kind(manifests, "TriggerAuthentication")
    refs = {r["parameter"]: (r["name"], r["key"]) for r in auth["spec"]["secretTargetRef"]}
    assert refs["password"] == (name, "password")  # the Secret the services mount
    assert refs["ca"] == ("maskwatch-cluster-ca-cert", "ca.crt")
    (scaled,) = _kind(manifests, "ScaledObject")
    trigger = scaled["spec"]["triggers"][0]
    assert trigger["authenticationRef"] == {"name": auth["metadata"]["name"]}
    assert trigger["metadata"]["sasl"] == "scram_sha512"
    assert trigger["metadata"]["tls"] == "enable"


def test_production_values_turn_kafka_security_on(render: Render) -> None:
    manifests = render(PRODUCTION)
    for manifest in _clients(manifests).values():
        assert _env(manifest)["MASKWATCH_KAFKA_SECURITY__PROTOCOL"] == "SASL_SSL"
    (auth,) = _kind(manifests, "TriggerAuthentication")
    refs = {r["parameter"]: r["name"] for r in auth["spec"]["secretTargetRef"]}
    assert refs["password"] == "maskwatch-kafka-user"


def test_the_api_always_gets_a_token(render: Render, tmp_path: Path) -> None:
    """No token given: the chart generates one (the API is never open by default)."""
    manifests = render(DEFAULT)
    (secret,) = [
        m for m in _kind(manifests, "Secret") if m["metadata"]["name"].endswith("-secrets")
    ]
    token = secret["stringData"]["api-token"]
    assert len(token) == 40 and token.isalnum()
    given = render(DEFAULT, {"secrets": {"apiToken": "given"}}, tmp=tmp_path)
    assert [m for m in _kind(given, "Secret") if m["stringData"].get("api-token") == "given"]
    (api,) = [m for m in manifests if m["kind"] == "Deployment" and component(m) == "api"]
    refs = {e["name"]: e["valueFrom"] for e in containers(api)[0]["env"] if "valueFrom" in e}
    assert refs["MASKWATCH_API_TOKEN"]["secretKeyRef"]["key"] == "api-token"
    assert refs["MASKWATCH_API_TOKEN"]["secretKeyRef"]["name"] == secret["metadata"]["name"]


def _egress(manifests: list[Manifest]) -> dict[str, list[dict[str, Any]]]:
    return {
        m["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"]: m["spec"]["egress"]
        for m in _kind(manifests, "NetworkPolicy")
        if m["spec"]["policyTypes"] == ["Egress"]
    }


def _ports(rules: list[dict[str, Any]]) -> set[int]:
    return {p["port"] for rule in rules for p in rule.get("ports", [])}


def test_every_workload_may_reach_only_what_it_uses(render: Render, tmp_path: Path) -> None:
    manifests = render(
        DEFAULT, {"secrets": {"webhookUrl": "https://hooks.invalid/x"}}, tmp=tmp_path
    )
    egress = _egress(manifests)
    workloads = {
        component(m) for m in manifests if m["kind"] in {"Deployment", "StatefulSet", "Job"}
    }
    assert workloads <= set(egress)
    assert _ports(egress["detector"]) == {53, 9092, 9093, 8500}  # DNS, Kafka, model server
    assert _ports(egress["api"]) == {53, 9092, 9093, 6379}  # DNS, Kafka, in-chart Redis
    assert _ports(egress["aggregator"]) == {53, 9092, 9093, 6379, 443}  # + the webhook
    assert _ports(egress["model-server"]) == _ports(egress["redis"]) == {53}
    (redis_rule,) = [r for r in egress["api"] if {"port": 6379, "protocol": "TCP"} in r["ports"]]
    assert (
        redis_rule["to"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "redis"
    )


def test_strimzi_kafka_egress_goes_to_the_broker_pods(render: Render) -> None:
    egress = _egress(render(STRIMZI))
    kafka_rules = [r for r in egress["detector"] if {"port": 9093, "protocol": "TCP"} in r["ports"]]
    (rule,) = kafka_rules
    assert rule["to"] == [
        {
            "podSelector": {
                "matchLabels": {"strimzi.io/cluster": "maskwatch", "strimzi.io/kind": "Kafka"}
            }
        }
    ]


def _pod(manifests: list[Manifest], name: str) -> dict[str, Any]:
    (workload,) = [m for m in manifests if m["kind"] == "Deployment" and component(m) == name]
    return dict(workload["spec"]["template"]["spec"])


def test_grpc_tls_wires_tf_serving_ssl_config_and_the_detectors(
    render: Render, tmp_path: Path
) -> None:
    tls = {"enabled": True, "sslConfigSecret": "tfs-ssl", "caSecret": "ms-ca"}
    manifests = render(DEFAULT, {"modelServer": {"tls": tls}}, tmp=tmp_path)
    server = _pod(manifests, "model-server")
    assert "--ssl_config_file=/etc/tfserving-tls/ssl.config" in server["containers"][0]["args"]
    assert {"name": "ssl-config", "mountPath": "/etc/tfserving-tls", "readOnly": True} in server[
        "containers"
    ][0]["volumeMounts"]
    assert {v["name"]: v.get("secret", {}).get("secretName") for v in server["volumes"]}[
        "ssl-config"
    ] == "tfs-ssl"
    detector = _pod(manifests, "detector")
    env = _env({"spec": {"template": {"spec": detector}}, "kind": "Deployment"})
    assert env["MASKWATCH_DETECTOR_MODEL_SERVER_TLS__ENABLED"] == "true"
    ca_file = env["MASKWATCH_DETECTOR_MODEL_SERVER_TLS__CA_FILE"]
    mounts = {m["mountPath"] for m in detector["containers"][0]["volumeMounts"]}
    assert ca_file.rsplit("/", 1)[0] in mounts


def test_grpc_tls_on_the_maskwatch_engine_is_mutual_when_asked(
    render: Render, tmp_path: Path
) -> None:
    tls = {"enabled": True, "certSecret": "ms-tls", "clientAuth": True}
    values = {"modelServer": {"engine": "maskwatch", "canary": {"enabled": False}, "tls": tls}}
    server = _pod(render(DEFAULT, values, tmp=tmp_path), "model-server")
    env = _env({"spec": {"template": {"spec": server}}, "kind": "Deployment"})
    assert env["MASKWATCH_SERVE_TLS__CERT_FILE"] == "/etc/maskwatch/grpc-tls/tls.crt"
    assert env["MASKWATCH_SERVE_TLS__CLIENT_CA_FILE"] == "/etc/maskwatch/grpc-tls/ca.crt"
