"""Strict JSON schemas for kubeconform, generated offline.

kubeconform normally downloads its schemas from a host CI cannot reach. The same information
ships inside Go modules that the Go module proxy serves: Kubernetes' own OpenAPI document
(`api/openapi-spec/swagger.json` in k8s.io/kubernetes) and the CRD manifests of KEDA and the
Prometheus Operator. This turns them into the file layout kubeconform's `-schema-location`
templates expect, "strict" as in kubeconform's own schema sets: objects with declared
properties reject unknown keys, so a misspelt field in a template fails CI.

    python jsonschemas.py openapi SWAGGER_JSON OUT_DIR   # OUT_DIR/<kind>[-<group>]-<version>.json
    python jsonschemas.py crd OUT_DIR CRD_YAML...         # OUT_DIR/<group>/<kind>_<version>.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml

Schema = dict[str, Any]

INT_OR_STRING: Schema = {"oneOf": [{"type": "string"}, {"type": "integer"}]}
# resource.Quantity is a string in OpenAPI, but YAML writes `cpu: 1` as a number.
QUANTITY: Schema = {"oneOf": [{"type": "string"}, {"type": "number"}]}
SPECIAL = {
    "io.k8s.apimachinery.pkg.util.intstr.IntOrString": INT_OR_STRING,
    "io.k8s.apimachinery.pkg.api.resource.Quantity": QUANTITY,
}


def strict(node: Any) -> Any:
    """Copy of a schema tree: no descriptions, closed objects, int-or-string as oneOf."""
    if isinstance(node, list):
        return [strict(item) for item in node]
    if not isinstance(node, dict):
        return node
    if node.get("x-kubernetes-int-or-string") or node.get("format") == "int-or-string":
        return dict(INT_OR_STRING)
    out = {k: strict(v) for k, v in node.items() if k != "description"}
    closed = "properties" in out and "additionalProperties" not in out
    if closed and not out.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False
    return out


def _refs(node: Any, found: set[str]) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/definitions/"):
            found.add(ref.removeprefix("#/definitions/"))
        for value in node.values():
            _refs(value, found)
    elif isinstance(node, list):
        for value in node:
            _refs(value, found)


def _closure(name: str, definitions: dict[str, Schema]) -> set[str]:
    """Every definition reachable from `name` (self-references and cycles included once)."""
    seen: set[str] = set()
    todo = [name]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        found: set[str] = set()
        _refs(definitions[current], found)
        todo.extend(found - seen)
    return seen


def from_openapi(swagger: Path, out: Path) -> int:
    """One self-contained schema per group/version/kind; shared types kept as definitions."""
    definitions: dict[str, Schema] = json.loads(swagger.read_text())["definitions"]
    converted = {name: SPECIAL.get(name) or strict(schema) for name, schema in definitions.items()}
    out.mkdir(parents=True, exist_ok=True)
    written = 0
    for name, schema in definitions.items():
        for gvk in schema.get("x-kubernetes-group-version-kind", []):
            group, kind, version = gvk["group"], gvk["kind"].lower(), gvk["version"]
            suffix = f"-{group.split('.')[0]}-{version}" if group else f"-{version}"
            document: Schema = {"$ref": f"#/definitions/{name}", "definitions": {}}
            for needed in _closure(name, definitions):
                document["definitions"][needed] = converted[needed]
            (out / f"{kind}{suffix}.json").write_text(json.dumps(document))
            written += 1
    return written


def from_crds(out: Path, crd_files: list[Path]) -> int:
    """One schema per served version of each CustomResourceDefinition."""
    written = 0
    for path in crd_files:
        for crd in yaml.safe_load_all(path.read_text()):
            if not crd or crd.get("kind") != "CustomResourceDefinition":
                continue
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"].lower()
            for version in crd["spec"]["versions"]:
                schema = version.get("schema", {}).get("openAPIV3Schema")
                if schema is None:
                    continue
                target = out / group / f"{kind}_{version['name']}.json"
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(json.dumps(strict(schema)))
                written += 1
    return written


def main(argv: list[str]) -> int:
    if len(argv) == 3 and argv[0] == "openapi":
        count = from_openapi(Path(argv[1]), Path(argv[2]))
    elif len(argv) >= 3 and argv[0] == "crd":
        count = from_crds(Path(argv[1]), [Path(p) for p in argv[2:]])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    if count == 0:
        print("no schemas found", file=sys.stderr)
        return 1
    print(f"wrote {count} schemas")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
