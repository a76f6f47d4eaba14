"""Print the requirements of maskwatch's build, core and the given extras, one per line.

The image build installs them against the exact pins of requirements.txt (as constraints)
before the source is copied, so the dependency layer is rebuilt only when pyproject.toml or
the pins change; the build system's requirements (setuptools) come first, so the project itself
then installs without build isolation (nothing fetched after the dependency layer).
Usage: python extras.py pyproject.toml producer,detector
"""

import sys
import tomllib
from pathlib import Path


def requirements(pyproject: Path, extras: list[str]) -> list[str]:
    """Build requirements, core dependencies and each named extra's, once each, in order."""
    document = tomllib.loads(pyproject.read_text())
    project = document["project"]
    optional: dict[str, list[str]] = project["optional-dependencies"]
    unknown = sorted(set(extras) - set(optional))
    if unknown:
        raise SystemExit(f"unknown extras {unknown}; pyproject.toml has {sorted(optional)}")
    found = list(document["build-system"]["requires"]) + list(project["dependencies"])
    for extra in extras:
        found += optional[extra]
    return list(dict.fromkeys(found))


if __name__ == "__main__":
    names = [name for name in sys.argv[2].split(",") if name]
    print("\n".join(requirements(Path(sys.argv[1]), names)))
