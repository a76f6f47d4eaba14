"""Every setting every deployed service reads can be set through the chart's values.

Settings classes are discovered at test time (every ServiceSettings subclass in workers.* and
serving.*), so a field or a service added later is checked too. The chart's mechanism:
`<component>.env: {NAME: value}` (and `kafka.env` for MASKWATCH_KAFKA_* on every Kafka client)
sets any variable verbatim, above whatever the chart maps from typed values. The tests check
that mechanism for every field, that every MASKWATCH_* variable the chart renders is a real
field of the right service, and that the rendered values pass the services' own validation.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from runtime.settings import (
    SECTION_DELIMITER,
    ServiceSettings,
    _leaf_fields,
    _section_models,
)
from tests.deploy.conftest import (
    PRODUCT_PACKAGES,
    VALUE_SETS,
    Manifest,
    Render,
    component,
    containers,
    import_all_modules,
)

# env prefix -> (values key of its `env` map, components whose containers read it)
DEPLOYED: dict[str, tuple[str, tuple[str, ...]]] = {
    "MASKWATCH_PRODUCER_": ("producer", ("producer",)),
    "MASKWATCH_DETECTOR_": ("detector", ("detector", "detector-canary")),
    "MASKWATCH_AGGREGATOR_": ("aggregator", ("aggregator",)),
    "MASKWATCH_API_": ("api", ("api",)),
    "MASKWATCH_SERVE_": ("modelServer", ("model-server",)),  # modelServer.engine=maskwatch
    "MASKWATCH_KAFKA_": (
        "kafka",
        ("producer", "detector", "detector-canary", "aggregator", "api", "topics"),
    ),
}
# Settings of commands that are not cluster services (documented in deploy/README.md).
NOT_DEPLOYED = {
    "MASKWATCH_STACK_": "the local development stack",
    "MASKWATCH_TRAIN_": "offline training",
    "MASKWATCH_EVALUATE_CLASSIFIER_": "offline evaluation of the classifier",
    "MASKWATCH_EVALUATE_PIPELINE_": "offline evaluation of the pipeline",
    "MASKWATCH_EXPORT_": "offline export; its SavedModel goes into the model image",
    "MASKWATCH_RUN_": "the local all-in-one pipeline (`maskwatch run`)",
    "MASKWATCH_RESULTS_TAIL_": "a consumer's command-line tool (`maskwatch results tail`)",
    "MASKWATCH_RESULTS_EXPORT_": "a consumer's command-line tool (`maskwatch results export`)",
}
# Render every optional workload so each component's container exists.
ALL_ON: dict[str, Any] = {
    "detector": {"canary": {"enabled": True, "replicas": 1}},
    "modelServer": {"engine": "maskwatch", "canary": {"enabled": False}},
}


def _subclasses(cls: type[ServiceSettings]) -> set[type[ServiceSettings]]:
    found = set(cls.__subclasses__())
    for sub in list(found):
        found |= _subclasses(sub)
    return found


def _discover() -> dict[str, list[type[ServiceSettings]]]:
    import_all_modules()
    by_prefix: dict[str, list[type[ServiceSettings]]] = {}
    for cls in _subclasses(ServiceSettings):
        if not cls.__module__.startswith(tuple(f"{p}." for p in PRODUCT_PACKAGES)):
            continue  # classes that tests define for themselves are not the product's
        prefix = str(cls.model_config.get("env_prefix") or "").upper()
        assert prefix.startswith("MASKWATCH_"), f"{cls.__qualname__} has env prefix {prefix!r}"
        by_prefix.setdefault(prefix, []).append(cls)
    return by_prefix


SETTINGS = _discover()


def _names(prefix: str) -> str:
    return ", ".join(sorted(cls.__qualname__ for cls in SETTINGS[prefix]))


def _prefix_env_names(prefix: str) -> set[str]:
    """Every variable the classes with this prefix read (a prefix may be shared)."""
    return {name for cls in SETTINGS[prefix] for name in _env_names(cls)}


def _env_names(cls: type[ServiceSettings]) -> list[str]:
    """Every variable of `cls`: one per field, plus `<SECTION>__<FIELD>` for section fields."""
    prefix = str(cls.model_config.get("env_prefix")).upper()
    names = []
    for name, field in cls.model_fields.items():
        names.append(f"{prefix}{name}".upper())
        leaves = _leaf_fields(_section_models(field.annotation))
        names += [f"{prefix}{name}{SECTION_DELIMITER}{leaf}".upper() for leaf in leaves]
    return names


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    entries = container.get("env", [])
    names = [e["name"] for e in entries]
    assert len(names) == len(set(names)), f"duplicate env names in {container['name']}"
    return {e["name"]: e for e in entries}


def _main_containers(manifests: list[Manifest]) -> dict[str, dict[str, Any]]:
    found = {}
    for manifest in manifests:
        if manifest["kind"] in {"Deployment", "StatefulSet", "Job"}:
            found[component(manifest)] = manifest["spec"]["template"]["spec"]["containers"][0]
    return found


def test_settings_classes_are_found() -> None:
    assert {"MASKWATCH_KAFKA_", "MASKWATCH_DETECTOR_"} <= set(SETTINGS)


@pytest.mark.parametrize("prefix", sorted(SETTINGS))
def test_every_settings_class_is_deployed_or_documented_as_offline(prefix: str) -> None:
    assert prefix in DEPLOYED or prefix in NOT_DEPLOYED, (
        f"{_names(prefix)} ({prefix}*) is neither wired into the chart "
        "(tests/deploy DEPLOYED + a values key with `env`) nor listed as not deployed"
    )


@pytest.mark.parametrize("prefix", sorted(p for p in SETTINGS if p in DEPLOYED))
def test_every_field_can_be_set_through_values(render: Render, prefix: str, tmp_path: Path) -> None:
    key, components = DEPLOYED[prefix]
    names = sorted(_prefix_env_names(prefix))
    wanted = {name: f"set-by-chart-{name.lower()}" for name in names}
    base = next(p for p in VALUE_SETS if p.name == "values-default.yaml")
    values = _deep_merge(ALL_ON, {key: {"env": wanted}})
    rendered = _main_containers(render(base, values, tmp=tmp_path))
    for name in components:
        assert name in rendered, f"{name} not rendered"
        env = _env_of(rendered[name])
        for variable, value in wanted.items():
            assert env.get(variable, {}).get("value") == value, f"{variable} in {name}"


def _all_renders(render: Render, tmp: Path) -> list[tuple[str, list[Manifest]]]:
    out = []
    for values in VALUE_SETS:
        out.append((values.name, render(values)))
        out.append((f"{values.name}+all-on", render(values, ALL_ON, tmp=tmp)))
    return out


def test_rendered_variables_are_real_fields_of_the_right_service(
    render: Render, tmp_path: Path
) -> None:
    for label, manifests in _all_renders(render, tmp_path):
        for manifest in manifests:
            for container in containers(manifest):
                for variable in _env_of(container):
                    if not variable.startswith("MASKWATCH_"):
                        continue
                    prefix = next((p for p in DEPLOYED if variable.startswith(p)), None)
                    assert prefix is not None, f"{label}: {variable} has no deployed service"
                    assert prefix in SETTINGS, f"{label}: no settings class for {variable}"
                    assert variable in _prefix_env_names(prefix), (
                        f"{label}: the chart sets {variable}, which {_names(prefix)} does not read"
                    )
                    assert component(manifest) in DEPLOYED[prefix][1], (
                        f"{label}: {variable} set on {component(manifest)}"
                    )


def test_rendered_values_pass_the_services_validation(
    render: Render, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    checked = 0
    for label, manifests in _all_renders(render, tmp_path):
        for manifest in manifests:
            for container in containers(manifest):
                plain = {
                    name: entry["value"]
                    for name, entry in _env_of(container).items()
                    if "value" in entry and name.startswith("MASKWATCH_")
                }
                for prefix in {p for p in DEPLOYED if any(n.startswith(p) for n in plain)}:
                    for name in [n for n in os.environ if n.startswith("MASKWATCH_")]:
                        monkeypatch.delenv(name)
                    for name, value in plain.items():
                        monkeypatch.setenv(name, value)
                    try:
                        for cls in SETTINGS[prefix]:
                            cls()
                    except Exception as error:  # pragma: no cover - the failure message
                        pytest.fail(f"{label} {container['name']}: {prefix}* invalid: {error}")
                    checked += 1
    assert checked >= 20
