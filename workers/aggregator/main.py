"""`maskwatch aggregator`: consume the results topic, fold results into Redis, raise alerts.

At-least-once with idempotent writes: a polled batch is applied to Redis (each result
guarded by its (camera, seq) dedupe entry), its dead letters are acknowledged by Kafka, and
only then are the offsets committed. A crash anywhere before the commit redelivers the
batch, and the dedupe guard turns the replay into no-ops. While Redis is unreachable the
same batch is retried with backoff and the service reports itself not ready.
"""

from __future__ import annotations

import time
from typing import Any

import click
from kafka import KafkaConsumer, KafkaProducer
from kafka.errors import CommitFailedError, KafkaConnectionError
from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from runtime.kafka import KafkaSettings, make_consumer, make_producer
from runtime.logs import configure_logging, get_logger
from runtime.service import ServiceRuntime
from runtime.settings import load_settings, settings_options
from schemas.alert import AlertEvent
from schemas.common import encode
from workers.aggregator.core import Aggregator, Record
from workers.aggregator.settings import AggregatorSettings
from workers.aggregator.webhook import WebhookNotifier

log = get_logger("aggregator")
MAX_BACKOFF_S = 10.0


class Service:
    """The run loop around `Aggregator`: Kafka in, Redis, dead letters and alerts out."""

    def __init__(
        self, settings: AggregatorSettings, kafka: KafkaSettings, runtime: ServiceRuntime
    ) -> None:
        self.settings, self.kafka, self.runtime = settings, kafka, runtime
        self.redis = Redis.from_url(
            settings.redis_url, decode_responses=True, socket_timeout=10, socket_connect_timeout=5
        )
        self.producer: KafkaProducer = make_producer(kafka, f"{settings.client_id}-out")
        self.webhook = (
            WebhookNotifier(settings.webhook_url, settings.webhook_queue, settings.webhook_retries)
            if settings.webhook_url
            else None
        )
        self.core = Aggregator(settings, self.redis, self._publish_alert)
        self.consumer: KafkaConsumer = make_consumer(
            kafka,
            settings.group_id,
            settings.client_id,
            kafka.results_topic,
            max_poll_records=settings.max_batch,
        )

    def _publish_alert(self, event: AlertEvent) -> None:
        key = event.camera_id.encode()
        self.producer.send(self.kafka.alerts_topic, key=key, value=encode(event))
        if self.webhook is not None:
            self.webhook.offer(event)

    def run(self) -> None:
        next_check = 0.0
        try:
            while not self.runtime.stopping.is_set():
                self.runtime.health.beat()
                try:
                    polled = self.consumer.poll(timeout_ms=self.settings.poll_timeout_ms)
                except KafkaConnectionError as error:
                    # Broker unreachable (e.g. restarting): nothing is lost by waiting, the
                    # uncommitted batch is polled again once it is back.
                    self.runtime.health.set_ready(False, f"kafka: {error}")
                    log.warning("kafka_unavailable", error=str(error))
                    self.runtime.stopping.wait(1.0)
                    continue
                records: list[Any] = [r for batch in polled.values() for r in batch]
                if records and not self._process(records):
                    return  # stopping while Redis was down: nothing committed, replayed later
                if records:
                    self._commit()
                if time.monotonic() >= next_check:
                    self._retrying(self.core.check_silence)
                    self.producer.flush()
                    next_check = time.monotonic() + self.settings.eval_interval_s
        finally:
            self.close()

    def _process(self, records: list[Record]) -> bool:
        """Apply a batch and acknowledge its dead letters; False if stopped before done."""
        outcome = self._retrying(lambda: self.core.handle(records))
        if outcome is None:
            return False
        for letter in outcome.dead_letters:
            key = letter.camera_id.encode() if letter.camera_id else None
            self.producer.send(self.kafka.dead_letter_topic, key=key, value=encode(letter))
        self.producer.flush()
        return True

    def _retrying(self, work: Any) -> Any:
        """Run `work` until Redis answers (backing off) or the service is stopping."""
        delay = 0.2
        while True:
            try:
                value = work()
            except (RedisConnectionError, RedisTimeoutError) as error:
                self.runtime.health.set_ready(False, f"redis: {error}")
                log.warning("redis_unavailable", error=str(error), retry_in_s=delay)
                if self.runtime.stopping.wait(delay):
                    return None
                delay = min(delay * 2, MAX_BACKOFF_S)
                self.runtime.health.beat()
                continue
            self.runtime.health.set_ready(True, "")
            return value

    def _commit(self) -> None:
        try:
            self.consumer.commit()
        except CommitFailedError as error:
            # The group rebalanced: another member replays the batch and the dedupe absorbs it.
            log.warning("commit_failed", error=str(error))

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
