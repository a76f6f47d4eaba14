"""The Grafana dashboard shipped with the chart plots metrics the services really export.

Metric names are collected from the live Prometheus registries: the global one (detector,
aggregator, model server and client metrics register when their modules import) and the
per-instance registries of the producer and the API, with the API's fleet gauges (computed
at scrape time from its overview: here an empty one, which still names every family).
"""

from __future__ import annotations

import json
import re

from prometheus_client import REGISTRY, CollectorRegistry

from tests.deploy.conftest import CHART, VALUE_SETS, Render, import_all_modules

SUFFIXES = ("_total", "_bucket", "_sum", "_count", "_created")


def _exported_families() -> set[str]:
    import_all_modules()
    from redis.asyncio import Redis

    from schemas.redis_state import Keys
    from workers.api.app import Metrics as ApiMetrics
    from workers.api.fleet_metrics import FleetCollector
    from workers.api.overview import LiveOverview
    from workers.api.store import Store
    from workers.producer.metrics import ProducerMetrics

    api = ApiMetrics().registry
    store = Store(Redis.from_url("redis://127.0.0.1:1/0"), Keys(), 60.0)  # never connects
    api.register(FleetCollector(LiveOverview(store), ["site", "zone"], 10, 10))
    registries = [REGISTRY, api]
    producer_registry = CollectorRegistry()
    ProducerMetrics(producer_registry)
    registries.append(producer_registry)
    return {family.name for registry in registries for family in registry.collect()}


def _family(sample_name: str) -> str:
    for suffix in SUFFIXES:
        if sample_name.endswith(suffix):
            return sample_name.removesuffix(suffix)
    return sample_name


def test_dashboard_metrics_are_exported() -> None:
    dashboard = json.loads((CHART / "dashboards" / "maskwatch.json").read_text())
    expressions = [
        target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])
    ]
    used = {_family(m) for e in expressions for m in re.findall(r"\bmaskwatch_[a-z0-9_]+", e)}
    assert len(used) >= 25
    missing = used - _exported_families()
    assert not missing, f"dashboard plots metrics nobody exports: {sorted(missing)}"


def test_dashboard_is_shipped_as_a_grafana_configmap(render: Render) -> None:
    manifests = render(VALUE_SETS[0])
    config = next(
        m for m in manifests if m["kind"] == "ConfigMap" and "maskwatch.json" in m["data"]
    )
    assert config["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(config["data"]["maskwatch.json"])["uid"] == "maskwatch-overview"
