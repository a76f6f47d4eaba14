"""The chart renders, lints and validates for every example value set, and refuses bad values.

`validate.sh` is what CI runs: helm lint, helm template | kubeconform -strict against the
Kubernetes schemas and the KEDA / Prometheus Operator CRD schemas (Strimzi kinds skipped on
purpose, see deploy/README.md).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.conftest import (
    CACHE,
    KUBE_VERSION,
    VALUE_SETS,
    Render,
    Validation,
    component,
    containers,
    run_template,
)
from workers.producer.config import load_cameras


def _plain_env(manifest: dict[str, Any]) -> dict[str, str]:
    """Name -> value of the main container's literal env entries (valueFrom ones left out)."""
    main = manifest["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: str(e["value"]) for e in main["env"] if "value" in e}


def test_validate_script_passes_for_every_value_set(validation: Validation) -> None:
    assert validation.returncode == 0, validation.output[-6000:]
    summaries = re.findall(
        r"Summary: (\d+) resources? found .* Valid: (\d+), Invalid: (\d+), Errors: (\d+), "
        r"Skipped: (\d+)",
        validation.output,
    )
    assert len(summaries) == len(VALUE_SETS) >= 3
    for found, valid, invalid, errors, skipped in summaries:
        assert int(invalid) == int(errors) == 0
        assert int(valid) + int(skipped) == int(found) > 20


def test_only_strimzi_kinds_are_skipped(render: Render) -> None:
    skipped = {"Kafka", "KafkaTopic", "KafkaNodePool", "KafkaUser"}
    kinds = {m["kind"] for values in VALUE_SETS for m in render(values)}
    assert {"ScaledObject", "ServiceMonitor"} <= kinds  # validated against their CRD schemas
    assert kinds & skipped == skipped  # the Strimzi set renders them (and only they are skipped)


@pytest.mark.parametrize("values", VALUE_SETS, ids=lambda p: p.name)
def test_every_workload_is_hardened_and_probed(render: Render, values: Path) -> None:
    workloads = [m for m in render(values) if m["kind"] in {"Deployment", "StatefulSet", "Job"}]
    assert workloads
    for manifest in workloads:
        pod = manifest["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, manifest["metadata"]["name"]
        for container in containers(manifest):
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True
            assert security["allowPrivilegeEscalation"] is False
            assert security["capabilities"]["drop"] == ["ALL"]
            assert container["resources"]["requests"], container["name"]
            assert container["resources"]["limits"]["memory"], container["name"]
        if manifest["kind"] != "Job":
            main = pod["containers"][0]
            assert main.get("livenessProbe") and main.get("readinessProbe"), main["name"]


@pytest.mark.parametrize("values", VALUE_SETS, ids=lambda p: p.name)
def test_python_services_probe_their_health_port(render: Render, values: Path) -> None:
    ports = {
        "producer": 9101,
        "detector": 9102,
        "detector-canary": 9102,
        "aggregator": 9103,
        "api": 8080,
    }
    seen = set()
    for manifest in render(values):
        name = component(manifest) if manifest["kind"] in {"Deployment", "StatefulSet"} else ""
        if name not in ports:
            continue
        seen.add(name)
        main = manifest["spec"]["template"]["spec"]["containers"][0]
        by_name = {p["name"]: p["containerPort"] for p in main["ports"]}
        assert by_name[main["readinessProbe"]["httpGet"]["port"]] == ports[name]
        assert main["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert main["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert {"producer", "detector", "aggregator", "api"} <= seen


@pytest.mark.parametrize("values", VALUE_SETS, ids=lambda p: p.name)
def test_rendered_camera_config_loads_in_the_producer(
    render: Render, values: Path, tmp_path: Path
) -> None:
    """Wherever the chart puts cameras.yaml (its ConfigMap, or a Secret), it validates."""
    contents = [
        dict(m.get("data") or m.get("stringData") or {})
        for m in render(values)
        if m["kind"] in {"ConfigMap", "Secret"}
    ]
    (text,) = [c["cameras.yaml"] for c in contents if "cameras.yaml" in c]
    path = tmp_path / "cameras.yaml"
    path.write_text(text)
    assert load_cameras(path)


def test_sharded_producers_get_their_ordinal(render: Render) -> None:
    production = next(p for p in VALUE_SETS if p.name == "values-production.yaml")
    producer = next(
        m for m in render(production) if component(m) == "producer" and m["kind"] == "StatefulSet"
    )
    env = {e["name"]: e for e in producer["spec"]["template"]["spec"]["containers"][0]["env"]}
    index = env["MASKWATCH_PRODUCER_REPLICA_INDEX"]["valueFrom"]["fieldRef"]["fieldPath"]
    assert index == "metadata.labels['apps.kubernetes.io/pod-index']"
    assert env["MASKWATCH_PRODUCER_REPLICA_COUNT"]["value"] == str(producer["spec"]["replicas"])


def test_keda_scales_the_detector_group_on_the_frames_topic(render: Render) -> None:
    production = next(p for p in VALUE_SETS if p.name == "values-production.yaml")
    manifests = render(production)
    scaled = next(m for m in manifests if m["kind"] == "ScaledObject")
    detector = next(
        m for m in manifests if m["kind"] == "Deployment" and component(m) == "detector"
    )
    env = _plain_env(detector)
    trigger = scaled["spec"]["triggers"][0]
    assert trigger["type"] == "kafka"
    assert trigger["metadata"]["consumerGroup"] == env["MASKWATCH_DETECTOR_GROUP_ID"]
    assert trigger["metadata"]["topic"] == env["MASKWATCH_KAFKA_FRAMES_TOPIC"]
    assert scaled["spec"]["scaleTargetRef"]["name"] == detector["metadata"]["name"]
    assert "replicas" not in detector["spec"]  # KEDA owns the count
    canary = next(
        m for m in manifests if m["kind"] == "Deployment" and component(m) == "detector-canary"
    )
    most = scaled["spec"]["maxReplicaCount"] + canary["spec"]["replicas"]
    assert most <= int(env["MASKWATCH_KAFKA_FRAMES_PARTITIONS"])


def test_canary_detectors_call_the_canary_model_server(render: Render) -> None:
    production = next(p for p in VALUE_SETS if p.name == "values-production.yaml")
    manifests = render(production)
    servers = {m["metadata"]["name"]: m for m in manifests if m["kind"] == "Service"}
    config = next(m for m in manifests if m["kind"] == "ConfigMap" and "models.config" in m["data"])
    assert 'version_labels { key: "canary" value: 4 }' in config["data"]["models-canary.config"]
    assert "versions: 3" in config["data"]["models.config"]
    for name in ("detector", "detector-canary"):
        deployment = next(
            m for m in manifests if m["kind"] == "Deployment" and component(m) == name
        )
        env = _plain_env(deployment)
        host = env["MASKWATCH_DETECTOR_MODEL_SERVER"].split(".")[0]
        assert host in servers
        assert servers[host]["metadata"]["labels"]["app.kubernetes.io/component"] == (
            "model-server-canary" if name == "detector-canary" else "model-server"
        )


REFUSED: list[tuple[dict[str, Any], str]] = [
    (
        {"keda": {"enabled": True, "maxReplicaCount": 13}, "kafka": {"framesPartitions": 12}},
        "must not exceed kafka.framesPartitions",
    ),
    (
        {
            "keda": {"enabled": True, "maxReplicaCount": 12},
            "detector": {"canary": {"enabled": True, "replicas": 1}},
            "kafka": {"framesPartitions": 12},
        },
        "must not exceed kafka.framesPartitions",
    ),
    (
        {"detector": {"replicas": 20}, "kafka": {"framesPartitions": 12}},
        "must not exceed kafka.framesPartitions",
    ),
    ({"producer": {"kind": "Deployment", "replicas": 3}}, "needs producer.kind=StatefulSet"),
    ({"producer": {"config": {"cameras": []}}}, "producer.config.cameras is empty"),
    (
        {"modelServer": {"versions": [1], "versionLabels": {"canary": 2}}},
        "must name one of modelServer.versions",
    ),
    ({"redis": {"enabled": False, "url": ""}}, "redis.url is required"),
    (
        {"modelServer": {"engine": "openvino-model-server", "openvino": {"precision": "bf16"}}},
        "modelServer.openvino.precision must be int8 or fp32",
    ),
]


@pytest.mark.parametrize(("values", "message"), REFUSED, ids=[m for _, m in REFUSED])
def test_chart_refuses_broken_values(
    helm: Path, values: dict[str, Any], message: str, tmp_path: Path
) -> None:
    base = next(p for p in VALUE_SETS if p.name == "values-default.yaml")
    override = tmp_path / "override.yaml"
    override.write_text(yaml.safe_dump(values))
    done = run_template(helm, "-f", str(base), "-f", str(override))
    assert done.returncode != 0
    assert message in done.stderr


BROKEN = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: typo}
spec:
  selector: {matchLabels: {a: b}}
  template:
    metadata: {labels: {a: b}}
    spec:
      containers: [{name: c, image: i, resource: {}}]
---
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {name: typo}
spec: {scaleTargetRef: {name: typo}, maxReplicas: 3, triggers: [{type: kafka, metadata: {}}]}
"""


def test_strict_schemas_reject_unknown_fields(validation: Validation, tmp_path: Path) -> None:
    """The offline schemas are strict: a misspelt field fails, in core kinds and in CRDs."""
    assert validation.returncode == 0, validation.output[-4000:]
    k8s = CACHE / "schemas" / f"k8s-{KUBE_VERSION}"
    (crds,) = (p for p in (CACHE / "schemas").glob("crds-*") if ".tmp." not in p.name)
    manifest = tmp_path / "broken.yaml"
    manifest.write_text(BROKEN)
    done = subprocess.run(
        [
            str(CACHE / "bin" / "kubeconform"),
            "-strict",
            "-summary",
            "-schema-location",
            f"{k8s}/{{{{ .ResourceKind }}}}{{{{ .KindSuffix }}}}.json",
            "-schema-location",
            f"{crds}/{{{{ .Group }}}}/{{{{ .ResourceKind }}}}_{{{{ .ResourceAPIVersion }}}}.json",
            str(manifest),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert "additional properties 'resource' not allowed" in done.stdout
    assert "additional properties 'maxReplicas' not allowed" in done.stdout
    assert "Invalid: 2" in done.stdout


@pytest.mark.parametrize("values", VALUE_SETS, ids=lambda p: p.name)
def test_every_long_running_pod_has_a_network_policy_and_a_disruption_budget(
    render: Render, values: Path
) -> None:
    manifests = render(values)
    workloads = {component(m) for m in manifests if m["kind"] in {"Deployment", "StatefulSet"}}
    policies = {
        m["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"]
        for m in manifests
        if m["kind"] == "NetworkPolicy" and m["spec"]["policyTypes"] == ["Ingress"]
    }
    budgets = {
        m["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"]
        for m in manifests
        if m["kind"] == "PodDisruptionBudget"
    }
    assert workloads <= policies
    assert workloads - {"redis"} <= budgets  # a single Redis pod is not drained by budget
    for manifest in manifests:
        if manifest["kind"] == "NetworkPolicy":
            (direction,) = manifest["spec"]["policyTypes"]  # one direction per policy
            assert manifest["spec"][direction.lower()], "an empty rule list denies everything"


def test_each_python_service_runs_its_own_image(render: Render, tmp_path: Path) -> None:
    """Per-service images by default; an empty repository falls back to the shared image."""
    base = next(p for p in VALUE_SETS if p.name == "values-default.yaml")
    on = {"modelServer": {"engine": "maskwatch"}, "detector": {"canary": {"enabled": True}}}

    def images(*values: Path | dict[str, Any]) -> dict[str, str]:
        return {
            component(m): m["spec"]["template"]["spec"]["containers"][0]["image"]
            for m in render(*values, tmp=tmp_path)
            if m["kind"] in {"Deployment", "StatefulSet", "Job"}
        }

    default = images(base, on)
    for name in ("producer", "detector", "detector-canary", "aggregator", "api"):
        assert default[name] == f"maskwatch/{name.removesuffix('-canary')}:0.1.0", name
    assert default["model-server"] == default["topics"] == "maskwatch/maskwatch:0.1.0"
    shared = images(base, on, {"image": {"tag": "2.0"}, "api": {"image": {"repository": ""}}})
    assert shared["api"] == shared["topics"] == "maskwatch/maskwatch:2.0"
    assert shared["producer"] == "maskwatch/producer:2.0"


def _model_server(manifests: list[dict[str, Any]]) -> dict[str, Any]:
    return next(
        m for m in manifests if m["kind"] == "Deployment" and component(m) == "model-server"
    )


@pytest.mark.parametrize("engine", ["tensorflow-serving", "maskwatch", "openvino-model-server"])
def test_model_server_threads_are_pinned_on_every_engine(
    render: Render, engine: str, tmp_path: Path
) -> None:
    base = next(p for p in VALUE_SETS if p.name == "values-default.yaml")
    values = {"modelServer": {"engine": engine, "threads": 3}}
    deployment = _model_server(render(base, values, tmp=tmp_path))
    main = deployment["spec"]["template"]["spec"]["containers"][0]
    if engine == "tensorflow-serving":
        assert "--tensorflow_intra_op_parallelism=3" in main["args"]
        assert "--tensorflow_inter_op_parallelism=1" in main["args"]
    elif engine == "maskwatch":
        assert _plain_env(deployment)["MASKWATCH_SERVE_INFERENCE_THREADS"] == "3"
    else:
        config = next(a for a in main["args"] if a.startswith("--plugin_config="))
        assert '"INFERENCE_NUM_THREADS": 3' in config


def test_openvino_model_server_serves_the_exported_ir_layout(render: Render) -> None:
    values = next(p for p in VALUE_SETS if p.name == "values-openvino.yaml")
    deployment = _model_server(render(values))
    pod = deployment["spec"]["template"]["spec"]
    layout = pod["initContainers"][0]
    script = layout["command"][-1]
    assert "/openvino/int8/model.xml" in script and "/openvino/int8/model.bin" in script
    server = pod["containers"][0]
    assert server["image"].startswith("openvino/model_server:")
    assert "--model_path=/models/mask_classifier" in server["args"]
    mounts = {m["name"]: m["mountPath"] for m in server["volumeMounts"]}
    assert mounts["ir"] == "/models/mask_classifier"
    assert {m["name"]: m["mountPath"] for m in layout["volumeMounts"]}["ir"] == "/target"
    assert server["resources"]["limits"]["cpu"] == "2"
