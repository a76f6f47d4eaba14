"""`maskwatch aggregator`: consume the results topic, fold results into Redis, raise alerts.

At-least-once with idempotent writes: a polled batch is applied to Redis (each result
guarded by its (camera, seq) dedupe entry and its camera's applied mark), its dead letters
and alerts are acknowledged by Kafka, and only then are the offsets committed. A crash
anywhere before the commit redelivers the batch, and the dedupe guard turns the replay into
no-ops. An alert is in Redis's outbox from the moment it is recorded until Kafka
acknowledged it, and whatever stays there (a send that failed, a crash in between) is
announced again at the next evaluation. While Redis is unreachable the same batch is
retried with back-off and the service reports itself not ready. While the broker is
unreachable the service reports itself not ready too (`runtime.broker`): a dead-letter
flush or a commit that the broker does not take is retried, the batch held, and an alert
send still unacknowledged stays in the outbox (committing past it loses nothing) while the
loop goes on. A record the Kafka client cannot decode is skipped and dead-lettered by its
place (`runtime.poll`).
"""

from __future__ import annotations

import time
from typing import Any

import click
from kafka import KafkaConsumer, KafkaProducer
from kafka.errors import (
    CommitFailedError,
    KafkaConnectionError,
    KafkaTimeoutError,
    RebalanceInProgressError,
)
from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from runtime.backoff import Backoff, BackoffPolicy
from runtime.broker import BLOCK, BrokerProbe, until_kafka_answers
from runtime.dead_letters import DeadLetterSink
from runtime.kafka import KafkaSettings, make_consumer, make_producer, topic_specs
from runtime.logs import configure_logging, get_logger
from runtime.poll import CorruptRecord, poll_records
from runtime.service import ServiceRuntime
from runtime.settings import load_settings, settings_options
from schemas.alert import AlertEvent
from schemas.common import DeadLetterReason, encode
from schemas.dead_letter import build_dead_letter
from workers.aggregator.apply import outbox_age_s, outbox_id
from workers.aggregator.core import Aggregator, Record
from workers.aggregator.settings import AggregatorSettings
from workers.aggregator.webhook import WebhookNotifier

log = get_logger("aggregator")
REDIS_BACKOFF = BackoffPolicy(initial_s=0.2, max_s=10.0)
"""Waiting for Redis: unbounded (the batch is held, nothing is lost by waiting)."""
KAFKA_BACKOFF = BackoffPolicy(initial_s=0.5, max_s=5.0)
"""Waiting for the broker: unbounded, likewise."""
RESEND_AFTER_S = 30.0
"""An outbox entry this old was not acknowledged in time by whoever recorded it: resend."""
ALERT_FLUSH_S = 2.0
"""How long one evaluation waits for alert sends; the rest are checked at the next one."""
KAFKA_STEP_S = 10.0
"""Bound of one dead-letter flush or commit while the broker is away, so the loop keeps
beating (/healthz) between tries."""


class Service:
    """The run loop around `Aggregator`: Kafka in, Redis, dead letters and alerts out."""

    def __init__(
        self, settings: AggregatorSettings, kafka: KafkaSettings, runtime: ServiceRuntime
    ) -> None:
        self.settings, self.kafka, self.runtime = settings, kafka, runtime
        self.redis = Redis.from_url(
            settings.redis_url,
            decode_responses=True,
            socket_timeout=10,
            socket_connect_timeout=5,
            **settings.redis_options(),
        )
        self.producer: KafkaProducer = make_producer(kafka, f"{settings.client_id}-out")
        self.webhook = (
            WebhookNotifier(settings.webhook_url, settings.webhook_queue, settings.webhook_retries)
            if settings.webhook_url
            else None
        )
        self.core = Aggregator(settings, self.redis, self._publish_alert)
        sizes = {t.name: t.max_message_bytes for t in topic_specs(kafka)}
        self.dead_letters = DeadLetterSink(
            self.producer, kafka.dead_letter_topic, sizes[kafka.dead_letter_topic]
        )
        self._alerts_sent: list[tuple[str, Any]] = []
        self.consumer: KafkaConsumer = make_consumer(
            kafka,
            settings.group_id,
            settings.client_id,
            kafka.results_topic,
            max_poll_records=settings.max_batch,
            # sized for results, not frames: one record batch of the results topic per
            # partition fetch, a few per poll, so what the client holds (and inflates) is small
            max_partition_fetch_bytes=sizes[kafka.results_topic],
            fetch_max_bytes=4 * sizes[kafka.results_topic],
        )
        self.broker = BrokerProbe(self.consumer, kafka.results_topic, runtime.health)

    def _publish_alert(self, event: AlertEvent) -> None:
        self._announce(outbox_id(event), encode(event))
        if self.webhook is not None:
            self.webhook.offer(event)

    def _announce(self, event_id: str, value: bytes) -> None:
        key = event_id.split("|")[1].encode()  # the camera id (see outbox_id)
        future = self.producer.send(self.kafka.alerts_topic, key=key, value=value)
        self._alerts_sent.append((event_id, future))

    def run(self) -> None:
        next_check = 0.0
        kafka_wait = Backoff(KAFKA_BACKOFF)
        try:
            while not self.runtime.stopping.is_set():
                self.runtime.health.beat()
                try:
                    polled = poll_records(
                        self.consumer, self.settings.poll_timeout_ms, self.settings.max_batch
                    )
                except KafkaConnectionError as error:
                    # Broker unreachable (e.g. restarting): nothing is lost by waiting, the
                    # uncommitted batch is polled again once it is back.
                    self.runtime.health.block(BLOCK, "broker unreachable")
                    log.warning("kafka_unavailable", error=str(error))
                    self.runtime.stopping.wait(kafka_wait.next_delay() or KAFKA_BACKOFF.max_s)
                    continue
                kafka_wait.reset()
                if polled.records or polled.corrupt:
                    self.broker.answered()
                else:
                    self.broker.check()
                for corrupt in polled.corrupt:
                    self._dead_letter_corrupt(corrupt)
                records: list[Any] = [r for batch in polled.records.values() for r in batch]
                if records and not self._process(records):
                    return  # stopping while Redis was down: nothing committed, replayed later
                if (records or polled.corrupt) and not self._confirm_and_commit():
                    return  # stopping while the broker was away: replayed later
                if time.monotonic() >= next_check:
                    self._retrying(self.core.check_silence)
                    self._retrying(self._resend_outbox)
                    self._confirm_alerts()
                    next_check = time.monotonic() + self.settings.eval_interval_s
        finally:
            self.close()

    def _dead_letter_corrupt(self, corrupt: CorruptRecord) -> None:
        self.dead_letters.send(
            build_dead_letter(
                source_topic=corrupt.topic,
                partition=corrupt.partition,
                offset=corrupt.offset,
                stage="aggregator",
                reason=DeadLetterReason.CORRUPT_RECORD,
                message=corrupt.error,
                payload=None,
            )
        )

    def _process(self, records: list[Record]) -> bool:
        """Apply a batch and send its dead letters; False if stopped before done."""
        outcome = self._retrying(lambda: self.core.handle(records))
        if outcome is None:
            return False
        for letter in outcome.dead_letters:
            self.dead_letters.send(letter)
        return True

    def _confirm_and_commit(self) -> bool:
        """Commit only once every dead letter is acknowledged (waiting for the broker if it is
        away; raises if one was lost: the batch is replayed by whoever takes over) and every
        alert is acknowledged or still in the outbox (so committing cannot lose it).
        False if stopped before the commit."""
        stopping, health = self.runtime.stopping, self.runtime.health
        confirmed = until_kafka_answers(self._confirm_dead_letters, health, stopping, "letters")
        if confirmed is None:
            return False
        self._retrying(self._confirm_alerts)
        try:
            committed = until_kafka_answers(self._commit, health, stopping, "commit")
        except (CommitFailedError, RebalanceInProgressError) as error:
            # The group rebalanced (or is rebalancing: the next poll rejoins it): whoever owns
            # the partition next replays the batch from the last commit; the dedupe absorbs it.
            log.warning("commit_failed", error=str(error))
            return True
        if committed is None:
            return False
        self.broker.answered()
        return True

    def _confirm_dead_letters(self) -> bool:
        self.dead_letters.confirm(timeout_s=KAFKA_STEP_S)
        return True

    def _commit(self) -> bool:
        self.consumer.commit(timeout_ms=int(KAFKA_STEP_S * 1000))
        return True

    def _confirm_alerts(self) -> None:
        """Wait a little for alert sends; acknowledged ones leave the outbox, failed ones
        stay there and are announced again by `_resend_outbox`, and those still in flight
        (the broker is away) are checked again next time."""
        if not self._alerts_sent:
            return
        try:
            self.producer.flush(timeout=ALERT_FLUSH_S)
        except KafkaTimeoutError:
            log.warning("alerts_not_yet_acknowledged", pending=len(self._alerts_sent))
        done, waiting = [], []
        for event_id, future in self._alerts_sent:
            if not future.is_done:
                waiting.append((event_id, future))
                continue
            try:
                future.get(timeout=0)
                done.append(event_id)
            except Exception as error:  # any failed send: the outbox keeps the event
                log.warning("alert_not_acknowledged", event_id=event_id, error=repr(error))
        self.core.applier.outbox_done(done)
        self._alerts_sent = waiting

    def _resend_outbox(self) -> None:
        """Announce again every outbox event older than RESEND_AFTER_S (at least once)."""
        now = time.time()
        in_flight = {event_id for event_id, _ in self._alerts_sent}
        for event_id, value in self.core.applier.outbox().items():
            if event_id not in in_flight and outbox_age_s(event_id, now) >= RESEND_AFTER_S:
                log.info("alert_reannounced", event_id=event_id)
                self._announce(event_id, value.encode())

    def _retrying(self, work: Any) -> Any:
        """Run `work` until Redis answers (backing off) or the service is stopping."""
        backoff = Backoff(REDIS_BACKOFF)
        while True:
            try:
                value = work()
            except (RedisConnectionError, RedisTimeoutError) as error:
                delay = backoff.next_delay() or REDIS_BACKOFF.max_s
                self.runtime.health.set_ready(False, f"redis: {error}")
                log.warning("redis_unavailable", error=str(error), retry_in_s=delay)
                if self.runtime.stopping.wait(delay):
                    return None
                self.runtime.health.beat()
                continue
            self.runtime.health.set_ready(True, "")
            return value

    def close(self) -> None:
        """Close the clients; sends the broker did not take in time are given up (their
        records are uncommitted or their alerts still in the outbox)."""
        self.consumer.close(autocommit=False)
        try:
            self.producer.close(timeout=10)
        except KafkaTimeoutError:
            log.warning("closed_with_unsent_records")
        if self.webhook is not None:
            self.webhook.close()
        self.redis.close()


@click.command("aggregator")
@settings_options(AggregatorSettings)
def cli(**values: Any) -> None:
    """Fold frame results from Kafka into per-camera windows in Redis and raise alerts."""
    settings = load_settings(AggregatorSettings, values)
    kafka = load_settings(KafkaSettings, {})
    configure_logging(settings.runtime.log_level, settings.runtime.json_logs)
    runtime = ServiceRuntime("aggregator", settings.runtime.health_port)
    runtime.install_signal_handlers()
    log.info(
        "starting",
        results_topic=kafka.results_topic,
        group_id=settings.group_id,
        key_prefix=settings.key_prefix,
    )
    try:
        Service(settings, kafka, runtime).run()
    finally:
        runtime.close()
    log.info("stopped")
