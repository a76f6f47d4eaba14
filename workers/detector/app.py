"""The running detector: wires settings, Kafka, the face detector and the model-server client
into a `Worker` (workers/detector/worker.py, where the delivery rules are written down).

Imported by `maskwatch detector` only once it runs (workers/detector/main.py), because it
loads Kafka, gRPC, numpy, OpenCV and the detector's runtime: `--help` needs none of them."""

from __future__ import annotations

from kafka import ConsumerRebalanceListener, TopicPartition

from runtime.kafka import KafkaSettings, make_consumer, make_producer
from runtime.logs import configure_logging, get_logger
from runtime.service import ServiceRuntime
from runtime.settings import load_settings
from workers.detector.backends import make_detector
from workers.detector.classifier import ClientConfig, GrpcClassifier
from workers.detector.core import Core, CoreConfig
from workers.detector.settings import DetectorSettings
from workers.detector.worker import Worker

log = get_logger("detector")


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self) -> None:
        self.worker: Worker | None = None

    def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        if self.worker is not None and revoked:
            self.worker.on_revoked(revoked)

    def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        log.info("partitions_assigned", partitions=sorted(p.partition for p in assigned))
        if self.worker is not None:
            self.worker.on_assigned(assigned)


def make_classifier(settings: DetectorSettings) -> GrpcClassifier:
    """The gRPC client of the model server (one long-lived channel per process)."""
    return GrpcClassifier(
        ClientConfig(
            target=settings.model_server,
            model_name=settings.model_name,
            deadline_s=settings.classify_timeout_s,
            max_batch=settings.max_batch_crops,
            tls=settings.model_server_tls,
            max_attempts=1,  # the worker owns retries (workers.detector.calls): none stacked
        )
    )


def run(settings: DetectorSettings) -> None:
    """Serve until SIGTERM: wait for the model server, join the group, run the worker."""
    kafka = load_settings(KafkaSettings, {})
    configure_logging(settings.runtime.log_level, settings.runtime.json_logs)
    runtime = ServiceRuntime("detector", settings.runtime.health_port)
    runtime.install_signal_handlers()
    detector = make_detector(settings.detector)
    classifier = make_classifier(settings)
    core = Core(
        detector,
        CoreConfig(
            worker_id=settings.worker_id,
            classifier_name=settings.model_name,
            crop=settings.crop,
            max_age_s=settings.max_age_s,
            max_frame_bytes=kafka.max_frame_bytes,
            mask_threshold=settings.mask_threshold,
            max_image_px=settings.max_image_px,
            max_clock_skew_s=settings.max_clock_skew_s,
            known_cameras=None
            if settings.known_cameras is None
            else frozenset(settings.known_cameras),
        ),
    )
    listener = _Rebalance()
    consumer = make_consumer(kafka, settings.group_id, settings.worker_id)
    producer = make_producer(kafka, settings.worker_id)
    worker = Worker(
        settings, kafka, consumer, producer, core, classifier, runtime.health, runtime.stopping
    )
    listener.worker = worker
    log.info(
        "started",
        worker_id=settings.worker_id,
        detector=detector.name,
        detector_version=detector.version,
        detector_licence=detector.licence,
        frames_topic=kafka.frames_topic,
    )
    try:
        if worker.wait_for_model_server():  # join the group only once frames can be answered
            consumer.subscribe([kafka.frames_topic], listener=listener)
            worker.run()
    finally:
        producer.close(timeout=30)
        consumer.close(autocommit=False)
        classifier.close()
        runtime.close()
