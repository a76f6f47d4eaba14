"""Print the requirements of maskwatch's core and the given extras, one per line.

The image build installs them against the exact pins of requirements.txt (as constraints)
before the source is copied, so the dependency layer is rebuilt only when pyproject.toml or
the pins change. Usage: python extras.py pyproject.toml producer,detector
"""

import sys
import tomllib
from pathlib import Path


def requirements(pyproject: Path, extras: list[str]) -> list[str]:
    """Core dependencies plus each named extra's, without duplicates, in a stable order."""
    project = tomllib.loads(pyproject.read_text())["project"]
    optional: dict[str, list[str]] = project["optional-dependencies"]
    unknown = sorted(set(extras) - set(optional))
    if unknown:
        raise SystemExit(f"unknown extras {unknown}; pyproject.toml has {sorted(optional)}")
    found = list(project["dependencies"])
    for extra in extras:
        found += optional[extra]
    return list(dict.fromkeys(found))


if __name__ == "__main__":
    names = [name for name in sys.argv[2].split(",") if name]
    print("\n".join(requirements(Path(sys.argv[1]), names)))
