"""The layering of docs/ARCHITECTURE.md, enforced: what may import what, and no cycles.

Every module of the product is parsed (not imported) and each `import` / `from … import` of
another product module is checked against the layer rules; then the module graph is checked
for cycles. Imports inside functions count too: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = (
    "schemas",
    "imaging",
    "runtime",
    "workers",
    "serving",
    "devtools",
    "consumers",
    "examples",
)
STAGES = ("producer", "detector", "aggregator", "api")

MAY_IMPORT: dict[str, set[str]] = {
    "schemas": {"schemas"},
    "imaging": {"imaging"},
    "runtime": {"runtime", "schemas"},
    "serving": {"serving", "schemas", "imaging", "runtime"},
    "consumers": {"consumers", "schemas", "runtime"},
    "examples": {"examples", "schemas"},
}
"""Layer → layers it may import. A stage (workers.<stage>) may import schemas, imaging,
runtime and itself only; `workers.cli` names subcommands as strings and imports none;
`devtools` (stack, local runner, evaluation) sits on top and may import anything.
`consumers` (read-only tools over the topics) reads contracts through the runtime's Kafka
settings; `examples` are for consumers to copy, so they import the contracts only."""


def layer_of(module: str) -> str:
    parts = module.split(".")
    if parts[0] == "workers" and len(parts) > 1 and parts[1] in STAGES:
        return f"workers.{parts[1]}"
    return parts[0]


def allowed(importer: str, imported: str) -> bool:
    source, target = layer_of(importer), layer_of(imported)
    if source == "devtools":
        return True
    if source.startswith("workers."):
        return target in {source, "schemas", "imaging", "runtime"}
    if source == "workers":  # workers/cli.py and the package itself
        return target in {"workers", "runtime"}
    return target in MAY_IMPORT[source] or (source == target)


def modules() -> Iterator[tuple[str, Path]]:
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            if "models" in path.relative_to(REPO).parts[1:2]:
                continue
            relative = path.relative_to(REPO).with_suffix("")
            parts = relative.parts[:-1] if relative.name == "__init__" else relative.parts
            yield ".".join(parts), path


def imports_of(module: str, path: Path) -> set[str]:
    """Product modules `module` imports (anywhere in its file)."""
    found: set[str] = set()
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")[: len(module.split(".")) - node.level + is_package]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}
    return {name for name in found if name.split(".")[0] in PACKAGES}


GRAPH = {module: imports_of(module, path) for module, path in modules()}


def resolved(name: str) -> str | None:
    """The module an imported name lives in (`a.b.func` → `a.b`)."""
    while name and name not in GRAPH:
        name = name.rpartition(".")[0]
    return name or None


EDGES = {
    module: {r for name in names if (r := resolved(name)) and r != module}
    for module, names in GRAPH.items()
}


@pytest.mark.parametrize("module", sorted(EDGES))
def test_module_imports_only_what_its_layer_may(module: str) -> None:
    wrong = sorted(target for target in EDGES[module] if not allowed(module, target))
    assert not wrong, f"{module} ({layer_of(module)}) must not import {wrong}"


def test_no_import_cycles() -> None:
    """Depth-first search; a back edge is a cycle. Packages' own `__init__` re-exporting
    their submodules is not a cycle (a submodule importing its package is)."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        stack.append(module)
        for target in sorted(EDGES[module]):
            if target.startswith(module + "."):
                continue  # a package importing its own submodule
            if state.get(target) == 1:
                cycle = [*stack[stack.index(target) :], target]
                pytest.fail("import cycle: " + " → ".join(cycle))
            if target not in state:
                visit(target)
        stack.pop()
        state[module] = 2

    for module in sorted(EDGES):
        if module not in state:
            visit(module)


@pytest.mark.parametrize(("module", "path"), sorted(modules()))
def test_modules_stay_short(module: str, path: Path) -> None:
    lines = len(path.read_text().splitlines())
    assert lines <= 420, f"{module} has {lines} lines: split it by concern"


@pytest.mark.parametrize(
    ("importer", "imported", "ok"),
    [
        ("workers.detector.core", "schemas.frame", True),
        ("workers.detector.core", "workers.aggregator.core", False),  # stage → stage
        ("workers.api.store", "schemas.redis_state", True),
        ("serving.server", "workers.detector.core", False),  # serving → a stage
        ("imaging.crop", "runtime.logs", False),  # pure maths does no I/O
        ("devtools.run", "workers.detector.settings", True),  # tooling sits on top
        ("schemas.result", "imaging.boxes", False),
        ("consumers.reader", "runtime.kafka", True),
        ("consumers.results", "workers.aggregator.core", False),  # a consumer is not a stage
        ("examples.duckdb_sink.sink", "runtime.kafka", False),  # copyable: contracts only
    ],
)
def test_rules_table(importer: str, imported: str, ok: bool) -> None:
    assert allowed(importer, imported) is ok
