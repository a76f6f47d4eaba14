"""The aggregator's work on one batch, without Kafka's loop: decode, apply, judge alerts.

`Aggregator.handle` turns consumed records into Redis writes and dead letters and returns
only once Redis has confirmed the writes, so the caller may then commit the offsets. Alert
transitions are recorded in Redis first (compare-and-set, so several aggregators never
announce the same one twice), with the event in an outbox that is emptied only once Kafka
acknowledged it, and only then handed to `alert_sink` (Kafka topic, webhook).

One boundary per record: every record is applied or dead-lettered with a reason. Before
parsing, a record's size is bounded (`max_result_bytes`, after the client's decompression)
and the parser stops at ~200 levels of nesting; after it, faces per frame (`max_faces`) and
the capture time (no later than now + `max_clock_skew_s`) are bounded. Any other exception
on one record dead-letters it (`processing_failed`); only Redis being unreachable stops a
batch, so that it is retried whole.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from prometheus_client import Counter, Histogram
from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from runtime.logs import get_logger
from schemas.alert import AlertEvent
from schemas.common import DeadLetterReason, SchemaError, decode, encode
from schemas.dead_letter import DeadLetter, build_dead_letter
from schemas.redis_state import WINDOWS, Keys, RuleState, rule_state, sum_counters
from schemas.result import SUPPORTED_RESULT_VERSIONS, FrameResult
from workers.aggregator.alerts import (
    AlertRules,
    evaluate_compliance,
    evaluate_silence,
)
from workers.aggregator.apply import Applier, ApplyOutcome, outbox_id
from workers.aggregator.settings import AggregatorSettings

log = get_logger("aggregator")

RESULTS = Counter("maskwatch_aggregator_results_total", "Results consumed by outcome.", ["outcome"])
ALERTS = Counter("maskwatch_aggregator_alerts_total", "Alert transitions.", ["rule", "state"])
APPLY_SECONDS = Histogram(
    "maskwatch_aggregator_apply_seconds",
    "Time to apply one batch to Redis.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)


class Record(Protocol):
    """The parts of a Kafka ConsumerRecord the aggregator reads."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...


@dataclass(frozen=True)
class BatchOutcome:
    """One batch: what Redis applied, what was dead-lettered, which alerts changed."""

    applied: ApplyOutcome
    dead_letters: list[DeadLetter]
    alerts: list[AlertEvent]


AlertSink = Callable[[AlertEvent], None]


class Aggregator:
    """Folds decoded results into Redis and evaluates alert rules (see the module doc)."""

    def __init__(self, settings: AggregatorSettings, redis: Redis, alert_sink: AlertSink) -> None:
        if not redis.connection_pool.connection_kwargs.get("decode_responses"):
            raise ValueError("the aggregator reads Redis replies as text: use decode_responses")
        self.keys = Keys(settings.key_prefix)
        self.settings = settings
        self.redis = redis
        self.applier = Applier(
            redis, self.keys, settings.seen_ttl_s, settings.camera_ttl_s, settings.alerts_kept
        )
        self.alert_sink = alert_sink

    def handle(self, records: Sequence[Record], now: float | None = None) -> BatchOutcome:
        """Decode and apply a batch; raises (nothing committed) only if Redis is unreachable."""
        now = time.time() if now is None else now
        decoded: list[tuple[Record, FrameResult]] = []
        dead: list[DeadLetter] = []
        for record in records:
            try:
                decoded.append((record, self.decode(record, now)))
            except SchemaError as error:
                dead.append(_dead_letter(record, error.code, error.message))
            except Exception as error:  # one record's surprise must not stop the batch
                dead.append(_dead_letter(record, DeadLetterReason.PROCESSING_FAILED, repr(error)))
        started = time.perf_counter()
        outcome = self._apply(decoded, now, dead)
        APPLY_SECONDS.observe(time.perf_counter() - started)
        RESULTS.labels("applied").inc(outcome.applied)
        RESULTS.labels("duplicate").inc(outcome.duplicates)
        RESULTS.labels("late").inc(outcome.late)
        RESULTS.labels("dead_letter").inc(len(dead))
        alerts = self.check_compliance(outcome.cameras, now)
        return BatchOutcome(outcome, dead, alerts)

    def decode(self, record: Record, now: float) -> FrameResult:
        """One record's result, within this deployment's bounds; SchemaError if not."""
        value = record.value or b""
        limit = self.settings.max_result_bytes
        if len(value) > limit:
            raise SchemaError(
                DeadLetterReason.OVERSIZED_MESSAGE, f"{len(value)} bytes (max {limit})"
            )
        result = decode(FrameResult, value, SUPPORTED_RESULT_VERSIONS)
        if len(result.faces) > self.settings.max_faces:
            raise SchemaError(
                DeadLetterReason.TOO_MANY_FACES,
                f"{len(result.faces)} faces (max {self.settings.max_faces})",
            )
        ahead_s = result.captured_at.timestamp() - now
        if ahead_s > self.settings.max_clock_skew_s:
            raise SchemaError(
                DeadLetterReason.OUT_OF_RANGE, f"captured_at {ahead_s:.0f} s after now"
            )
        return result

    def _apply(
        self, decoded: list[tuple[Record, FrameResult]], now: float, dead: list[DeadLetter]
    ) -> ApplyOutcome:
        """Apply in one round trip; if Redis refuses the batch for a reason other than being
        unreachable, apply record by record and dead-letter those it still refuses."""
        try:
            return self.applier.apply_batch([r for _, r in decoded], now)
        except (RedisConnectionError, RedisTimeoutError):
            raise
        except Exception as error:  # a script error on some record: find which
            _raise_if_full(error)
            log.warning("batch_apply_failed", error=repr(error)[:500])
        total = ApplyOutcome(0, 0, frozenset())
        for record, result in decoded:
            try:
                one = self.applier.apply_batch([result], now)
            except (RedisConnectionError, RedisTimeoutError):
                raise
            except Exception as error:  # this record's own failure
                _raise_if_full(error)
                dead.append(_dead_letter(record, DeadLetterReason.PROCESSING_FAILED, repr(error)))
                continue
            total = ApplyOutcome(
                total.applied + one.applied,
                total.duplicates + one.duplicates,
                total.cameras | one.cameras,
                total.late + one.late,
            )
        return total

    def rules(self, camera: str) -> AlertRules:
        return self.settings.alert_rules(camera)

    def check_compliance(self, cameras: Iterable[str], now: float) -> list[AlertEvent]:
        """Evaluate low_compliance for cameras whose counts just changed."""
        plans = [(camera, self.rules(camera)) for camera in sorted(cameras)]
        if not plans:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for camera, rules in plans:
            for key in self.keys.window(camera, WINDOWS[rules.window], now):
                pipe.hgetall(key)
            pipe.hgetall(self.keys.alert_state(camera))
        replies = iter(pipe.execute())
        events = []
        for camera, rules in plans:
            buckets = [next(replies) for _ in range(WINDOWS[rules.window].buckets)]
            prev = rule_state(next(replies), "low_compliance")
            event = evaluate_compliance(camera, sum_counters(buckets), prev, rules, now)
            if event is not None:
                events.extend(self._record(event, prev, now))
        return events

    def check_silence(self, now: float | None = None) -> list[AlertEvent]:
        """Evaluate camera_silent for every registered camera; prune long-gone cameras."""
        now = time.time() if now is None else now
        self.applier.prune_registry(now)
        seen: list[tuple[str, float]] = list(
            self.redis.zrange(self.keys.registry, 0, -1, withscores=True)  # type: ignore[arg-type]
        )
        pipe = self.redis.pipeline(transaction=False)
        for camera, _ in seen:
            pipe.hgetall(self.keys.alert_state(camera))
        states = pipe.execute()
        events = []
        for (camera, last_ms), fields in zip(seen, states, strict=True):
            prev = rule_state(fields, "camera_silent")
            rules = self.rules(camera)
            event = evaluate_silence(camera, last_ms / 1000, prev, rules, now)
            if event is not None:
                events.extend(self._record(event, prev, now))
        return events

    def _record(self, event: AlertEvent, prev: RuleState, now: float) -> list[AlertEvent]:
        new_state = "firing" if event.state == "firing" else "ok"
        won = self.applier.transition(
            event.camera_id,
            event.rule,
            prev.state,
            new_state,
            now,
            event.value,
            encode(event).decode(),
            outbox_id(event),
        )
        if not won:
            return []
        ALERTS.labels(event.rule, event.state).inc()
        log.info(
            "alert",
            camera_id=event.camera_id,
            rule=event.rule,
            state=event.state,
            value=event.value,
            message=event.message,
        )
        self.alert_sink(event)
        return [event]


def _raise_if_full(error: Exception) -> None:
    """Redis out of memory (maxmemory with noeviction) is the infrastructure failing, not
    the record: raised as unreachable, so the batch is held and retried, never dead-lettered."""
    if isinstance(error, ResponseError) and str(error).startswith("OOM"):
        raise RedisConnectionError(f"redis is full: {error}") from error


def _dead_letter(record: Record, reason: DeadLetterReason, text: str) -> DeadLetter:
    """A bounded dead letter of a result record (its key is the camera id it claims)."""
    key = record.key[:64].decode("utf-8", "replace") if record.key else None
    return build_dead_letter(
        source_topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        stage="aggregator",
        reason=reason,
        message=text,
        payload=record.value,
        camera_id=key,
    )
