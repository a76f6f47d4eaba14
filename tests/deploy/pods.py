"""Run the chart's rendered containers with podman, as a kubelet would run them (one node).

What a container gets comes from the rendered manifests only: its image, args and env (plain
values, `fieldRef` metadata.name, `secretKeyRef` into the rendered Secret), its volumes (a
ConfigMap's items become read-only files, an emptyDir a tmpfs) and its security context
(user, read-only root filesystem, dropped capabilities, no privilege escalation). So the
chart's settings wiring is what reaches the services. Networking is the host's (the local
stack's Kafka, Redis and model server listen on 127.0.0.1).
"""

from __future__ import annotations

import base64
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.deploy.conftest import REPO_ROOT, Manifest

CONTAINERS_CONF = REPO_ROOT / "deploy" / "images" / "containers.conf"
BUILD_SCRIPT = REPO_ROOT / "deploy" / "images" / "build.sh"


def podman(
    *args: str, timeout_s: float = 120, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """podman with the repository's containers.conf (runc, cgroupfs, ulimits for this host)."""
    env = {**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF)}
    done = subprocess.run(
        ["podman", *args], env=env, capture_output=True, text=True, timeout=timeout_s, check=False
    )
    if check and done.returncode != 0:
        raise AssertionError(f"podman {' '.join(args[:3])} failed: {done.stderr[-3000:]}")
    return done


def workload(manifests: list[Manifest], component: str) -> Manifest:
    """The Deployment/StatefulSet of one component (exactly one must be rendered)."""
    found = [
        m
        for m in manifests
        if m["kind"] in {"Deployment", "StatefulSet"}
        and m["metadata"]["labels"]["app.kubernetes.io/component"] == component
    ]
    assert len(found) == 1, f"{len(found)} workloads for {component}"
    return found[0]


def _by_kind_and_name(manifests: list[Manifest], kind: str, name: str) -> Manifest:
    found = [m for m in manifests if m["kind"] == kind and m["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind} {name} rendered {len(found)} times"
    return found[0]


def _secret_value(manifests: list[Manifest], ref: dict[str, Any]) -> str | None:
    secret = _by_kind_and_name(manifests, "Secret", ref["name"])
    if ref["key"] in secret.get("stringData", {}):
        return str(secret["stringData"][ref["key"]])
    if ref["key"] in secret.get("data", {}):
        return base64.b64decode(secret["data"][ref["key"]]).decode()
    assert ref.get("optional"), f"secret key {ref['key']} missing and not optional"
    return None


def container_env(manifests: list[Manifest], container: dict[str, Any], pod: str) -> dict[str, str]:
    """The container's environment as the kubelet would give it to a pod named `pod`."""
    env: dict[str, str] = {}
    for entry in container.get("env", []):
        if "value" in entry:
            env[entry["name"]] = str(entry["value"])
            continue
        source = entry["valueFrom"]
        if "fieldRef" in source:
            assert source["fieldRef"]["fieldPath"] == "metadata.name", source
            env[entry["name"]] = pod
        elif "secretKeyRef" in source:
            value = _secret_value(manifests, source["secretKeyRef"])
            if value is not None:
                env[entry["name"]] = value
        else:
            raise AssertionError(f"unsupported env source {source}")
    return env


def security_flags(pod_spec: dict[str, Any], container: dict[str, Any]) -> list[str]:
    """podman flags for the pod's and container's security contexts (fails on unmapped ones)."""
    pod_ctx = pod_spec.get("securityContext", {})
    ctx = container.get("securityContext", {})
    flags = [f"--user={pod_ctx['runAsUser']}:{pod_ctx['runAsGroup']}"]
    if ctx.get("readOnlyRootFilesystem"):
        flags.append("--read-only")
    for capability in ctx.get("capabilities", {}).get("drop", []):
        flags.append(f"--cap-drop={capability}")
    assert not ctx.get("capabilities", {}).get("add"), "added capabilities are not mapped"
    if ctx.get("allowPrivilegeEscalation") is False:
        flags.append("--security-opt=no-new-privileges")
    return flags


def mount_flags(
    manifests: list[Manifest], pod_spec: dict[str, Any], container: dict[str, Any], tmp: Path
) -> list[str]:
    """Volumes: ConfigMap items as read-only files, emptyDir as tmpfs."""
    volumes = {v["name"]: v for v in pod_spec.get("volumes", [])}
    flags: list[str] = []
    for mount in container.get("volumeMounts", []):
        volume = volumes[mount["name"]]
        if "emptyDir" in volume:
            size = volume["emptyDir"].get("sizeLimit", "64Mi").replace("Mi", "m")
            flags.append(f"--tmpfs={mount['mountPath']}:rw,size={size},mode=1777")
        elif "configMap" in volume:
            data = _by_kind_and_name(manifests, "ConfigMap", volume["configMap"]["name"])["data"]
            folder = tmp / f"configmap-{mount['name']}"
            folder.mkdir(exist_ok=True)
            for item in volume["configMap"].get("items") or [{"key": k, "path": k} for k in data]:
                (folder / item["path"]).write_text(data[item["key"]])
            flags.append(f"--volume={folder}:{mount['mountPath']}:ro")
        else:
            raise AssertionError(f"volume {mount['name']} of an unsupported kind: {volume}")
    return flags


@dataclass(frozen=True)
class PodRun:
    """One rendered workload's main container as a `podman run` command line."""

    name: str
    image: str
    args: list[str]
    env: dict[str, str]
    flags: list[str] = field(default_factory=list)

    def command(self, env_file: Path, *extra_flags: str, detach: bool = True) -> list[str]:
        """`podman run` arguments; the environment goes through `env_file` (mode 0600), so a
        secret the chart passes (the API token) is never on a command line."""
        env_file.touch(mode=0o600)
        env_file.write_text("".join(f"{k}={v}\n" for k, v in sorted(self.env.items())))
        mode = ["--detach"] if detach else ["--rm"]
        return [
            "run",
            *mode,
            f"--name={self.name}",
            "--network=host",
            "--pull=never",
            f"--env-file={env_file}",
            *self.flags,
            *extra_flags,
            self.image,
            *self.args,
        ]


def pod_run(manifests: list[Manifest], component: str, tmp: Path, name: str) -> PodRun:
    """The PodRun of `component`'s workload; `name` is the pod (and container) name."""
    spec = workload(manifests, component)["spec"]["template"]["spec"]
    container = spec["containers"][0]
    return PodRun(
        name=name,
        image=container["image"],
        args=[str(a) for a in container.get("args", [])],
        env=container_env(manifests, container, name),
        flags=security_flags(spec, container) + mount_flags(manifests, spec, container, tmp),
    )


def kube_play_documents(manifests: list[Manifest], components: tuple[str, ...]) -> list[Manifest]:
    """The Secret and the components' Deployments, for `podman kube play --network host`.

    podman 4.3 plays Pod, Deployment, ConfigMap, Secret and PersistentVolumeClaim; of the
    chart's kinds it cannot play Service, NetworkPolicy, PodDisruptionBudget, StatefulSet, Job,
    ScaledObject and ServiceMonitor, so only these go in. One change: containerPort entries are
    dropped, because podman publishes them as port mappings, which host networking refuses
    ("PortMappings can only be used with Bridge or slirp4netns networking"); the services
    listen on their ports all the same.
    """
    documents: list[Manifest] = [m for m in manifests if m["kind"] == "Secret"]
    for component in components:
        deployment = workload(manifests, component)
        assert deployment["kind"] == "Deployment", deployment["kind"]
        spec = deployment["spec"]["template"]["spec"]
        stripped = [{k: v for k, v in c.items() if k != "ports"} for c in spec["containers"]]
        template = {**deployment["spec"]["template"], "spec": {**spec, "containers": stripped}}
        documents.append({**deployment, "spec": {**deployment["spec"], "template": template}})
    return documents
