"""The running API checked against its own OpenAPI spec with schemathesis (real Redis, data in).

Every operation except the endless event stream (covered in test_api) gets generated
requests, valid and invalid; responses must match the documented status codes, content
types and schemas, and nothing may answer 5xx.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings

from workers.aggregator.synthetic import stream

from .conftest import Feeder, LiveServer

pytestmark = pytest.mark.integration


def test_api_conforms_to_its_openapi_spec(live_api: LiveServer, feeder: Feeder) -> None:
    now = time.time()
    feeder.feed(stream(["cam-1", "cam-2"], 20, now - 10))
    feeder.silence_check(now + 120)  # some alert events, so /alerts has items to validate
    schema = schemathesis.openapi.from_url(f"{live_api.url}/openapi.json").exclude(
        path="/api/v1/stream"
    )
    operations = [op.ok() for op in schema.get_all_operations()]  # type: ignore[union-attr]
    assert {op.path for op in operations} >= {
        "/api/v1/cameras",
        "/api/v1/cameras/{camera_id}",
        "/api/v1/alerts",
        "/healthz",
        "/readyz",
    }
    assert "/metrics" not in {op.path for op in operations}  # on the health port only
    checked = 0
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=25,
            phases=[Phase.generate],
            deadline=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case: Any) -> None:
            case.call_and_validate(base_url=live_api.url)

        check()
        checked += 1
    # also the known camera, which random ids almost never hit
    camera_op = schema["/api/v1/cameras/{camera_id}"]["GET"]
    for camera in ("cam-1", "cam-2"):
        camera_op.Case(path_parameters={"camera_id": camera}).call_and_validate(
            base_url=live_api.url
        )
    assert checked == len(operations)
