"""Fixtures for the chart tests: helm and kubeconform as deploy/helm/validate.sh installs them.

The session runs validate.sh once (it builds the tools with `go install` through the Go module
proxy on first use, then reuses its cache) and hands its result and the helm binary to tests.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
HELM_DIR = REPO_ROOT / "deploy" / "helm"
CHART = HELM_DIR / "maskwatch"
VALIDATE = HELM_DIR / "validate.sh"
VALUE_SETS = sorted(HELM_DIR.glob("values-*.yaml"))
CACHE = Path(os.environ.get("MASKWATCH_DEPLOY_CACHE", Path.home() / ".cache" / "maskwatch-deploy"))


def _script_setting(name: str) -> str:
    """A version pinned in validate.sh (one source of truth for the tests too)."""
    match = re.search(rf"^{name}=(\S+)", VALIDATE.read_text(), re.MULTILINE)
    assert match, f"{name} is not set in {VALIDATE}"
    return match.group(1)


KUBE_VERSION = _script_setting("KUBE_VERSION")

Manifest = dict[str, Any]


@dataclass(frozen=True)
class Validation:
    returncode: int
    output: str


@pytest.fixture(scope="session")
def validation() -> Validation:
    """One run of validate.sh over every example value set (tools installed or cached)."""
    env = {**os.environ, "MASKWATCH_DEPLOY_CACHE": str(CACHE), "PYTHON": sys.executable}
    done = subprocess.run(
        ["bash", str(VALIDATE)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    return Validation(done.returncode, done.stdout + done.stderr)


@pytest.fixture(scope="session")
def helm(validation: Validation) -> Path:
    binary = CACHE / "bin" / "helm"
    if not binary.is_file():
        pytest.fail(f"validate.sh did not install helm:\n{validation.output[-4000:]}")
    return binary


Render = Callable[..., list[Manifest]]


def run_template(helm: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(helm),
            "template",
            "maskwatch",
            str(CHART),
            "--namespace",
            "maskwatch",
            "--kube-version",
            KUBE_VERSION,
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="session")
def render(helm: Path) -> Render:
    """`render(values_file_or_dict, ...)` -> the rendered manifests; a failed render fails."""

    def _render(*values: Path | dict[str, Any], tmp: Path | None = None) -> list[Manifest]:
        args: list[str] = []
        for index, value in enumerate(values):
            if isinstance(value, dict):
                assert tmp is not None, "pass tmp= to render a dict of values"
                path = tmp / f"values-{index}.yaml"
                path.write_text(yaml.safe_dump(value))
                value = path
            args += ["-f", str(value)]
        done = run_template(helm, *args)
        assert done.returncode == 0, done.stderr
        return [m for m in yaml.safe_load_all(done.stdout) if m]

    return _render


def containers(manifest: Manifest) -> list[dict[str, Any]]:
    """Containers and init containers of a workload manifest ([] for other kinds)."""
    spec = manifest.get("spec", {}).get("template", {}).get("spec", {})
    return list(spec.get("initContainers", [])) + list(spec.get("containers", []))


def component(manifest: Manifest) -> str:
    return str(manifest["metadata"]["labels"]["app.kubernetes.io/component"])


OWN_PACKAGES = ("schemas", "imaging", "runtime", "workers", "serving", "devtools")
PRODUCT_PACKAGES = ("runtime", "workers", "serving", "devtools", "consumers")
"""Packages whose settings classes are the product's (tests define their own elsewhere)."""


def import_all_modules() -> None:
    """Import every module of the product packages (settings classes, metrics register).

    A module that needs an optional extra which is not installed is passed over; any other
    import error fails the caller.
    """
    for package_name in PRODUCT_PACKAGES:
        package = importlib.import_module(package_name)
        for info in pkgutil.walk_packages(package.__path__, f"{package_name}."):
            try:
                importlib.import_module(info.name)
            except ModuleNotFoundError as error:
                if (error.name or "").split(".")[0] in OWN_PACKAGES:
                    raise
