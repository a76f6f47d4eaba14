"""The aggregator across a restart of its Kafka broker, on the session's private stack.

The broker is stopped under a running aggregator and brought back: the aggregator reports
not ready while the broker is gone, stays up, and afterwards every result is counted once
and committed. The outage is made to contain an alert: the first half's cameras go silent
(`camera_silent`) while the broker is away, so the alert's send cannot be acknowledged
then; the aggregator must neither exit over it (it did: a flush timeout escaped the loop)
nor lose it: each camera's silence alert, raised during the outage, is on the alerts topic
afterwards.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import redis

from schemas.alert import AlertEvent
from tests.private_stack import PrivateStack
from tests.recovery import (
    committed_offsets,
    end_offsets,
    free_port,
    http_status,
    read_to_end,
    start_stage,
    stop_stage,
    wait_for,
)
from tests.workers.aggregator.test_recovery import publish_placed
from tests.workers.aggregator.test_service import expected, totals
from workers.aggregator.synthetic import stream

pytestmark = pytest.mark.integration
SILENT_AFTER_S = 30.0
"""Long enough for the broker to be stopped after the first half is applied (a few s even
on a loaded runner), short enough to keep the outage, which must outlast it, brief."""


def test_broker_restart_under_a_running_aggregator_loses_and_doubles_nothing(
    private_stack: PrivateStack, tmp_path: Path
) -> None:
    kafka = private_stack.topics("agg-restart")
    group, prefix = f"agg-{kafka.results_topic}", f"{kafka.results_topic}:"
    client = redis.Redis(port=private_stack.redis_port, decode_responses=True)
    port = free_port()
    env = {
        **os.environ,
        **private_stack.kafka_env(kafka),
        "MASKWATCH_AGGREGATOR_REDIS_URL": f"redis://127.0.0.1:{private_stack.redis_port}/0",
        "MASKWATCH_AGGREGATOR_KEY_PREFIX": prefix,
        "MASKWATCH_AGGREGATOR_GROUP_ID": group,
        "MASKWATCH_AGGREGATOR_RUNTIME__HEALTH_PORT": str(port),
        "MASKWATCH_AGGREGATOR_SILENT_AFTER_S": str(SILENT_AFTER_S),
        "MASKWATCH_AGGREGATOR_EVAL_INTERVAL_S": "1",
    }
    log = tmp_path / "aggregator.log"
    process = start_stage("aggregator", env, log)
    cameras = [f"b-{i}" for i in range(6)]
    try:
        wait_for(lambda: http_status(port, "/readyz") == 200, 120, "the aggregator to be ready")
        # newest capture of the first half = now: its cameras fall silent SILENT_AFTER_S later
        results = stream(cameras, 100, time.time() - 49 / 5, fps=5)
        before, after = results[: len(results) // 2], results[len(results) // 2 :]
        silent_at = max(r.captured_at for r in before).timestamp() + SILENT_AFTER_S
        publish_placed(kafka, before)
        wait_for(lambda: totals(client, prefix) == expected(before), 120, "the first half")

        private_stack.stop_kafka()
        stopped_at = time.time()
        assert stopped_at < silent_at, "the broker took longer than SILENT_AFTER_S to stop"
        wait_for(lambda: http_status(port, "/readyz") == 503, 30, "not ready without a broker")
        # hold the outage until the silence alerts were raised and their sends timed out
        while time.time() < silent_at + 5:
            assert process.poll() is None, log.read_text()[-3000:]
            assert http_status(port, "/healthz") == 200  # alive, waiting
            time.sleep(0.5)
        assert http_status(port, "/readyz") == 503

        private_stack.start_kafka()  # the broker comes back with its data
        restarted_at = time.time()
        wait_for(lambda: http_status(port, "/readyz") == 200, 120, "ready again")
        publish_placed(kafka, after)
        ends = end_offsets(kafka, kafka.results_topic, 3)
        wait_for(
            lambda: committed_offsets(kafka, group, kafka.results_topic) == ends,
            120,
            "every result committed after the restart",
        )
        assert totals(client, prefix) == expected(results)

        def silenced_in_outage() -> set[str]:
            alerts = map(AlertEvent.model_validate_json, read_to_end(kafka, kafka.alerts_topic, 3))
            return {
                a.camera_id
                for a in alerts
                if (a.rule, a.state) == ("camera_silent", "firing")
                and stopped_at <= a.at.timestamp() <= restarted_at
            }

        # sent during the outage: on the topic once the producer has reconnected
        wait_for(lambda: silenced_in_outage() == set(cameras), 60, "the outage's alerts")
        assert stop_stage(process) == 0, log.read_text()[-3000:]
    finally:
        stop_stage(process)
        client.close()
