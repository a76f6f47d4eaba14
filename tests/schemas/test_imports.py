"""The contracts import nothing but pydantic and the standard library (they ship alone)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import schemas

ALLOWED = {"pydantic", "schemas", "__future__"}


def test_schemas_import_only_pydantic_and_the_standard_library() -> None:
    found = {}
    for path in Path(schemas.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top not in ALLOWED and top not in sys.stdlib_module_names:
                    found[f"{path.name}: {name}"] = top
    assert not found, f"schemas/ must depend on pydantic only, found {sorted(found)}"
