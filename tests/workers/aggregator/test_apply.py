"""The apply script and alert transitions on the real Redis of the local stack."""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.alert import AlertEvent
from schemas.common import encode
from schemas.redis_state import RESOLUTIONS, Keys
from schemas.result import FrameResult
from workers.aggregator.apply import outbox_id
from workers.aggregator.core import Aggregator
from workers.aggregator.settings import AggregatorSettings
from workers.aggregator.synthetic import result, stream

pytestmark = pytest.mark.integration


class Rec:
    """A consumed record as the aggregator sees it."""

    def __init__(self, value: bytes, offset: int = 0, key: bytes | None = None) -> None:
        self.topic, self.partition, self.offset, self.key, self.value = "t", 0, offset, key, value


def snapshot(client: redis.Redis, prefix: str) -> dict[str, Any]:
    """Every key under the prefix with its content (alerts aside: they carry wall times)."""
    out: dict[str, Any] = {}
    for key in sorted(client.scan_iter(match=f"{prefix}*", count=1000)):
        kind = client.type(key)
        if kind == b"hash":
            out[key.decode()] = client.hgetall(key)
        elif kind == b"zset":
            out[key.decode()] = client.zrange(key, 0, -1, withscores=True)
        else:
            out[key.decode()] = (kind, client.dump(key) is not None)
    return out


def aggregator(prefix: str, events: list[AlertEvent], **overrides: Any) -> Aggregator:
    settings = AggregatorSettings(key_prefix=prefix, **overrides)
    client = redis.Redis(host="127.0.0.1", port=6379, decode_responses=True)
    return Aggregator(settings, client, events.append)


def expected_totals(results: list[FrameResult]) -> dict[bytes, bytes]:
    processed = [r for r in results if r.status == "processed"]
    sums = {
        "frames": len(results),
        "skipped": len(results) - len(processed),
        "faces": sum(r.counts.faces for r in processed),
        "with_mask": sum(r.counts.with_mask for r in processed),
        "without_mask": sum(r.counts.without_mask for r in processed),
    }
    return {k.encode(): str(v).encode() for k, v in sums.items() if v}


NO_ALERTS = {"compliance_below": 0.0}
"""Alerts judge partial windows, so when they fire depends on batching; the apply state
(counters, latest, registry, dedupe) must not, and is compared without them."""


def applied_once(client: redis.Redis, prefix: str, results: list[FrameResult], now: float) -> None:
    """The reference: every result applied once, in order, in one batch."""
    aggregator(prefix, [], **NO_ALERTS).handle(
        [Rec(encode(r), i) for i, r in enumerate(results)], now
    )


def state(client: redis.Redis, prefix: str) -> dict[str, Any]:
    return {key.removeprefix(prefix): value for key, value in snapshot(client, prefix).items()}


@settings(max_examples=12, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_redelivery_order_and_batching_leaves_the_state_of_one_pass(
    redis_client: redis.Redis, redis_prefix: str, data: st.DataObject
) -> None:
    """Whatever a crash or rebalance replays — any order, any repeats, any batch sizes — the
    Redis state equals applying each result once, and each result counts as applied once."""
    now = time.time()
    results = stream(["cam-a", "cam-b", "cam-c"], 30, now - 20)
    run = uuid.uuid4().hex[:8]
    reference, replayed = f"{redis_prefix}{run}:ref:", f"{redis_prefix}{run}:replay:"
    applied_once(redis_client, reference, results, now)

    repeats = data.draw(st.lists(st.integers(0, len(results) - 1), max_size=len(results)))
    order = data.draw(st.permutations([*range(len(results)), *repeats]))
    sizes = data.draw(st.lists(st.integers(1, 40), min_size=1, max_size=10))
    records = [Rec(encode(results[i]), offset) for offset, i in enumerate(order)]
    agg, outcomes, start = aggregator(replayed, [], **NO_ALERTS), [], 0
    for size in itertools.cycle(sizes):
        if start >= len(records):
            break
        outcomes.append(agg.handle(records[start : start + size], now).applied)
        start += size
    assert sum(o.applied for o in outcomes) == len(results)
    assert sum(o.duplicates for o in outcomes) == len(repeats)
    assert state(redis_client, replayed) == state(redis_client, reference)
    keys = Keys(replayed)
    assert redis_client.hgetall(keys.totals) == expected_totals(results)
    for camera in ("cam-a", "cam-b", "cam-c"):
        mine = [r for r in results if r.camera_id == camera]
        assert redis_client.hgetall(keys.camera_totals(camera)) == expected_totals(mine)


def test_skipped_results_count_as_skipped_not_faces(
    redis_client: redis.Redis, redis_prefix: str
) -> None:
    now = time.time()
    agg = aggregator(redis_prefix, [])
    agg.handle(
        [
            Rec(encode(result("cam", 1, now, skipped=True))),
            Rec(encode(result("cam", 2, now, masked=2, unmasked=1))),
        ],
        now,
    )
    totals = redis_client.hgetall(Keys(redis_prefix).camera_totals("cam"))
    assert totals == {
        b"frames": b"2",
        b"skipped": b"1",
        b"faces": b"3",
        b"with_mask": b"2",
        b"without_mask": b"1",
    }


def test_every_per_camera_key_expires(redis_client: redis.Redis, redis_prefix: str) -> None:
    now = time.time()
    events: list[AlertEvent] = []
    agg = aggregator(redis_prefix, events, seen_ttl_s=600, camera_ttl_s=7200, silent_after_s=1)
    agg.handle([Rec(encode(r)) for r in stream(["cam"], 5, now - 1)], now)
    agg.check_silence(now + 10)
    assert events  # the alert state key exists too
    # one key each per deployment (the alerts list is capped by LTRIM instead)
    deployment_keys = ("cameras", "totals", "alerts", "alerts:outbox")
    unbounded = {f"{redis_prefix}{name}" for name in deployment_keys}
    longest = max(r.seconds + r.retention_s for r in RESOLUTIONS)
    for key in redis_client.scan_iter(match=f"{redis_prefix}*"):
        ttl = redis_client.ttl(key)
        if key.decode() in unbounded:
            assert ttl == -1
        else:
            assert 0 < ttl <= max(longest, 7200), key


def test_latest_summary_is_the_newest_capture_whatever_the_order(
    redis_client: redis.Redis, redis_prefix: str
) -> None:
    now = time.time()
    agg = aggregator(redis_prefix, [])
    newer, older = result("cam", 11, now - 1, masked=1), result("cam", 10, now - 2, unmasked=3)
    agg.handle([Rec(encode(newer)), Rec(encode(older))], now)
    latest = redis_client.hget(Keys(redis_prefix).latest("cam"), "json")
    assert latest is not None and b'"seq":11' in latest


def test_invalid_results_become_dead_letters(redis_prefix: str) -> None:
    agg = aggregator(redis_prefix, [])
    outcome = agg.handle([Rec(b"{not json", 5, b"cam"), Rec(b'{"schema_version": 9}', 6)])
    assert [d.reason.value for d in outcome.dead_letters] == [
        "invalid_message",
        "unsupported_schema_version",
    ]
    assert outcome.dead_letters[0].camera_id == "cam" and outcome.dead_letters[0].offset == 5
    assert outcome.applied.applied == 0


def test_low_compliance_alert_fires_once_and_clears(
    redis_client: redis.Redis, redis_prefix: str
) -> None:
    now = time.time()
    events: list[AlertEvent] = []
    rules = {"min_faces": 10, "alert_window": "1m", "cooldown_s": 0}
    agg = aggregator(redis_prefix, events, **rules)
    rival_events: list[AlertEvent] = []
    rival = aggregator(redis_prefix, rival_events, **rules)  # a second replica

    bad = [Rec(encode(result("cam", s, now - 5, masked=1, unmasked=3))) for s in range(5)]
    agg.handle(bad, now)
    assert [(e.rule, e.state) for e in events] == [("low_compliance", "firing")]
    assert events[0].value == 0.25
    # the other replica evaluating the same camera does not announce it again
    assert rival.check_compliance(["cam"], now) == [] and rival_events == []

    good = [Rec(encode(result("cam", s, now - 1, masked=4))) for s in range(5, 30)]
    agg.handle(good, now)
    assert [(e.rule, e.state) for e in events] == [
        ("low_compliance", "firing"),
        ("low_compliance", "resolved"),
    ]
    stored = [
        AlertEvent.model_validate_json(x)
        for x in redis_client.lrange(Keys(redis_prefix).alerts, 0, -1)
    ]
    assert [e.state for e in stored] == ["resolved", "firing"]  # newest first


def test_replicas_racing_on_one_transition_announce_it_once(
    redis_client: redis.Redis, redis_prefix: str
) -> None:
    """Eight replicas judge the same cameras at the same moment (a barrier releases them
    together): per camera exactly one records and publishes the firing, however their reads
    and compare-and-sets interleave."""
    now = time.time()
    cameras = [f"race-{i}" for i in range(5)]
    bad = [
        Rec(encode(result(camera, s, now - 5, masked=1, unmasked=3)))
        for camera in cameras
        for s in range(5)
    ]
    aggregator(redis_prefix, [], **NO_ALERTS).handle(bad, now)  # counters in, no alert yet
    rules = {"min_faces": 10, "alert_window": "1m", "cooldown_s": 0}
    events: list[list[AlertEvent]] = [[] for _ in range(8)]
    replicas = [aggregator(redis_prefix, mine, **rules) for mine in events]
    barrier = threading.Barrier(len(replicas))

    def judge(replica: Aggregator) -> None:
        for camera in cameras:
            barrier.wait(timeout=30)
            replica.check_compliance([camera], now)

    threads = [threading.Thread(target=judge, args=(r,)) for r in replicas]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    announced = sorted(e.camera_id for mine in events for e in mine)
    assert announced == cameras  # each camera once, by whichever replica won
    stored = redis_client.lrange(Keys(redis_prefix).alerts, 0, -1)
    assert len(stored) == len(cameras)


def test_camera_silent_alert_fires_and_clears(redis_prefix: str) -> None:
    now = time.time()
    events: list[AlertEvent] = []
    agg = aggregator(redis_prefix, events, silent_after_s=30, cooldown_s=0)
    agg.handle([Rec(encode(result("quiet", 1, now - 40)))], now)
    agg.check_silence(now)
    assert [(e.camera_id, e.rule, e.state) for e in events] == [
        ("quiet", "camera_silent", "firing")
    ]
    agg.check_silence(now + 1)
    assert len(events) == 1  # still silent: no repeat
    agg.handle([Rec(encode(result("quiet", 2, now + 2)))], now + 2)
    agg.check_silence(now + 2)
    assert [e.state for e in events] == ["firing", "resolved"]


def test_per_camera_rules_override_the_defaults(redis_prefix: str) -> None:
    now = time.time()
    events: list[AlertEvent] = []
    overrides = {"strict": {"compliance_below": 0.95}, "lenient": {"min_faces": 1000}}
    agg = aggregator(redis_prefix, events, min_faces=10, alert_window="1m", camera_rules=overrides)
    for camera in ("strict", "lenient", "default"):
        agg.handle(
            [Rec(encode(result(camera, s, now - 1, masked=9, unmasked=1))) for s in range(3)], now
        )
    assert [(e.camera_id, e.threshold) for e in events] == [("strict", 0.95)]


def test_replay_of_an_idle_camera_is_a_no_op_and_late_results_are_refused(
    redis_client: redis.Redis, redis_prefix: str
) -> None:
    """The dedupe guard follows the camera's applied mark, not the wall clock: results
    replayed long after they were applied (days, for a camera that went quiet) change
    nothing; a result older than the window below the mark is refused, never counted."""
    now = time.time()
    agg = aggregator(redis_prefix, [], seen_ttl_s=600)
    day = [result("cam", seq, now - 3600 + seq * 30, masked=1) for seq in range(100)]
    assert agg.handle([Rec(encode(r), i) for i, r in enumerate(day)], now).applied.applied == 100
    keys = Keys(redis_prefix)
    before = redis_client.hgetall(keys.camera_totals("cam"))
    blocks = list(redis_client.scan_iter(match=f"{keys.seen_prefix('cam')}*"))
    assert 0 < len(blocks) <= 600 // 10 + 1  # memory: only the window's blocks are kept
    for key in blocks:  # as if the camera were idle far beyond any wall-clock TTL
        assert redis_client.ttl(key) > 600
    replay = agg.handle([Rec(encode(r), i) for i, r in enumerate(day)], now + 5 * 86400)
    assert replay.applied.applied == 0
    assert replay.applied.duplicates + replay.applied.late == 100
    assert redis_client.hgetall(keys.camera_totals("cam")) == before
    late = result("cam", 10**6, now - 7200, masked=1)  # never applied, but far too old now
    assert agg.handle([Rec(encode(late))], now).applied.late == 1
    assert redis_client.hgetall(keys.camera_totals("cam")) == before


def test_results_beyond_their_bounds_become_dead_letters(redis_prefix: str) -> None:
    now = time.time()
    agg = aggregator(redis_prefix, [], max_faces=5, max_result_bytes=200_000)
    crowded = result("cam", 1, now - 1, masked=6)
    future = result("cam", 2, now + 86400 * 365, masked=1)
    records = [
        Rec(encode(crowded), 1),
        Rec(encode(future), 2),
        Rec(b" " * 200_001, 3),
        Rec(b"[" * 100_000, 4),
        Rec(b'{"a":' * 50_000, 5),
        Rec(encode(result("cam", 3, now - 1, masked=2)), 6),
    ]
    outcome = agg.handle(records, now)
    assert [(d.offset, d.reason.value) for d in outcome.dead_letters] == [
        (1, "too_many_faces"),
        (2, "out_of_range"),
        (3, "oversized_message"),
        (4, "oversized_message"),
        (5, "oversized_message"),
    ]
    assert outcome.applied.applied == 1


def test_an_alert_stays_in_the_outbox_until_acknowledged(redis_prefix: str) -> None:
    events: list[AlertEvent] = []
    agg = aggregator(redis_prefix, events, silent_after_s=1)
    now = time.time()
    agg.handle([Rec(encode(result("cam", 1, now - 5, masked=1)))], now)
    agg.check_silence(now + 10)
    assert [e.rule for e in events] == ["camera_silent"]
    pending = agg.applier.outbox()
    assert list(pending) == [outbox_id(events[0])]
    assert AlertEvent.model_validate_json(pending[outbox_id(events[0])]) == events[0]
    agg.applier.outbox_done(list(pending))
    assert agg.applier.outbox() == {}
