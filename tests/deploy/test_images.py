"""The services image's pinned requirements cover and satisfy what pyproject.toml declares.

The image installs deploy/docker/requirements.txt with --no-deps, so a dependency added to
pyproject.toml but not pinned there would be missing at run time in the cluster only.
"""

from __future__ import annotations

import tomllib

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.deploy.conftest import REPO_ROOT, Validation

IMAGE_EXTRAS = ("producer", "detector", "aggregator", "api", "serving")


def _pins() -> dict[str, Version]:
    pins: dict[str, Version] = {}
    for line in (REPO_ROOT / "deploy/docker/requirements.txt").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, _, version = line.partition("==")
        assert version, f"not an exact pin: {line}"
        pins[canonicalize_name(name)] = Version(version)
    return pins


def test_image_pins_satisfy_pyproject() -> None:
    document = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    project = document["project"]
    # The build system too: the image installs the project without build isolation.
    declared = list(document["build-system"]["requires"]) + list(project["dependencies"])
    for extra in IMAGE_EXTRAS:
        declared += project["optional-dependencies"][extra]
    pins = _pins()
    for text in declared:
        requirement = Requirement(text)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement.name} is not pinned in deploy/docker/requirements.txt"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"pinned {name}=={pins[name]} does not satisfy {text}"
        )


def test_dockerfiles_lint_clean(validation: Validation) -> None:
    assert validation.returncode == 0, validation.output[-4000:]
    assert "== hadolint" in validation.output
    assert "Dockerfiles lint clean" in validation.output


def test_the_services_image_gets_every_package() -> None:
    """Every package pyproject.toml installs is in the build context and copied (a package
    added to the layering but not to the Dockerfile would be missing in the image only)."""
    document = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    include = document["tool"]["setuptools"]["packages"]["find"]["include"]
    dockerfile = (REPO_ROOT / "deploy/docker/Dockerfile").read_text()
    allowed = (REPO_ROOT / "deploy/docker/Dockerfile.dockerignore").read_text().splitlines()
    for package in (pattern.rstrip("*") for pattern in include):
        assert f"COPY {package} ./{package}\n" in dockerfile, package
        assert f"!{package}/" in allowed, package
