"""`maskwatch aggregator`: consume the results topic, fold results into Redis, raise alerts.

At-least-once with idempotent writes: a polled batch is applied to Redis (each result
guarded by its (camera, seq) dedupe entry and its camera's applied mark), its dead letters
and alerts are acknowledged by Kafka, and only then are the offsets committed. A crash
anywhere before the commit redelivers the batch, and the dedupe guard turns the replay into
no-ops. An alert is in Redis's outbox from the moment it is recorded until Kafka
acknowledged it, and whatever stays there (a send that failed, a crash in between) is
announced again at the next evaluation. While Redis is unreachable the same batch is
retried with back-off and the service reports itself not ready. A record the Kafka client
cannot decode is skipped and dead-lettered by its place (`runtime.poll`).
"""

from __future__ import annotations

import time
from typing import Any

import click
from kafka import KafkaConsumer, KafkaProducer
from kafka.errors import KafkaConnectionError, KafkaError
from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from runtime.backoff import Backoff, BackoffPolicy
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
        # send() may wait for metadata as long as a write may take (broker restarts).
        self.producer: KafkaProducer = make_producer(
            kafka, f"{settings.client_id}-out", max_block_ms=120_000
        )
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
                    self.runtime.health.set_ready(False, f"kafka: {error}")
                    log.warning("kafka_unavailable", error=str(error))
                    self.runtime.stopping.wait(kafka_wait.next_delay() or KAFKA_BACKOFF.max_s)
                    continue
                kafka_wait.reset()
                for corrupt in polled.corrupt:
                    self._dead_letter_corrupt(corrupt)
                records: list[Any] = [r for batch in polled.records.values() for r in batch]
                if records and not self._process(records):
                    return  # stopping while Redis was down: nothing committed, replayed later
                if records or polled.corrupt:
                    self._confirm_and_commit()
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

    def _confirm_and_commit(self) -> None:
        """Commit only once every dead letter is acknowledged (raises otherwise: the batch
        is replayed by whoever takes over) and every alert is acknowledged or still in the
        outbox (so committing cannot lose it)."""
        self.dead_letters.confirm()
        self._retrying(self._confirm_alerts)
        try:
            self.consumer.commit()
        except KafkaError as error:
            # The group rebalanced, or the broker is away: the batch is replayed (by this
            # member or the next owner) and the dedupe absorbs it.
            log.warning("commit_failed", error=str(error))

    def _confirm_alerts(self) -> None:
        """Wait for alert sends; acknowledged ones leave the outbox, failed ones stay there
        and are announced again by `_resend_outbox`."""
        if not self._alerts_sent:
            return
        sent, self._alerts_sent = self._alerts_sent, []
        # Bounded by the producer's delivery timeout, not a shorter one: a broker restart
        # longer than 30 s ended the aggregator here (found by the soak).
        self.producer.flush()
        done = []
        for event_id, future in sent:
            try:
                future.get(timeout=0)
                done.append(event_id)
            except Exception as error:  # any failed send: the outbox keeps the event
                log.warning("alert_not_acknowledged", event_id=event_id, error=repr(error))
        self.core.applier.outbox_done(done)

    def _resend_outbox(self) -> None:
        """Announce again every outbox event older than RESEND_AFTER_S (at least once)."""
        now = time.time()
        for event_id, value in self.core.applier.outbox().items():
            if outbox_age_s(event_id, now) >= RESEND_AFTER_S:
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
        self.consumer.close(autocommit=False)
        self.producer.flush(timeout=10)
        self.producer.close(timeout=10)
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
