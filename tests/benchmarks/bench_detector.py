"""Benchmark: one detector worker vs. the research notebook's serial loop, same photos, one run.

    python tests/benchmarks/bench_detector.py --frames 40

- serial baseline (in-process, as the notebook did): decode → detect → for each face,
  crop and `model.predict` one crop at a time with the classifier loaded in the process.
- worker: a real `maskwatch detector` process reading the same photos as frames from Kafka,
  classifying batched crops through the model server, publishing results; throughput is
  measured between its first and last result (start-up excluded), per-stage times come from
  the results' `timings_ms`.

Both use the same detector settings and the shipped classifier weights (the model server
must serve them: `maskwatch stack up`). Prints frames/s, per-stage medians and the ratio.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import click
import cv2
import numpy as np
from kafka import KafkaConsumer, TopicPartition

from imaging.crop import CropConfig, crop_face
from runtime.kafka import KafkaSettings, create_topics, delete_topics, make_producer
from schemas.common import decode
from schemas.frame import FrameMeta, frame_headers
from schemas.result import SUPPORTED_RESULT_VERSIONS, FrameResult
from workers.detector.backends import BackendConfig, detector_config, make_detector

REPO = Path(__file__).resolve().parents[2]


def serial_baseline(photos: list[Path], config: BackendConfig, weights: Path) -> dict[str, float]:
    """The notebook's loop: one frame, then one face at a time, all in this process."""
    from serving.model import build_classifier
    from serving.weights import load_compact

    model = build_classifier(128, weights="none")
    load_compact(model, weights)
    model.predict(np.zeros((1, 128, 128, 3), np.uint8), verbose=0)  # warm-up, not timed
    detector = make_detector(config)
    crop = CropConfig()
    stages: dict[str, list[float]] = {"decode_ms": [], "detect_ms": [], "classify_ms": []}
    faces = 0
    started = time.perf_counter()
    for path in photos:
        t0 = time.perf_counter()
        image = np.asarray(
            cv2.imdecode(np.frombuffer(path.read_bytes(), np.uint8), cv2.IMREAD_COLOR), np.uint8
        )
        t1 = time.perf_counter()
        detections = detector.detect(image)
        t2 = time.perf_counter()
        for box in detections.xyxy:
            face = crop_face(
                image, (float(box[0]), float(box[1]), float(box[2]), float(box[3])), crop
            )
            model.predict(face[None, ..., ::-1], verbose=0)
        t3 = time.perf_counter()
        faces += len(detections)
        stages["decode_ms"].append((t1 - t0) * 1000)
        stages["detect_ms"].append((t2 - t1) * 1000)
        stages["classify_ms"].append((t3 - t2) * 1000)
    elapsed = time.perf_counter() - started
    totals = [sum(parts) for parts in zip(*stages.values(), strict=True)]
    out = {k: statistics.median(v) for k, v in stages.items()}
    out["total_ms"] = statistics.median(totals)
    out |= {"fps": len(photos) / elapsed, "faces_per_frame": faces / len(photos)}
    return out


def worker_run(
    photos: list[Path], model_server: str, detector_model: Path, timeout_s: float
) -> dict[str, float]:
    """A real worker process on fresh topics pre-filled with the photos as frames."""
    run = uuid.uuid4().hex[:8]
    kafka = KafkaSettings.with_topic_prefix(f"bench.{run}", partitions=3)
    create_topics(kafka)
    producer = make_producer(kafka, "bench")
    for seq, path in enumerate(photos):
        height, width = np.asarray(cv2.imread(str(path))).shape[:2]
        camera = f"cam-{seq % 3}"
        meta = FrameMeta(
            camera_id=camera, seq=seq, captured_at=datetime.now(UTC), width=width, height=height
        )
        producer.send(
            kafka.frames_topic,
            key=camera.encode(),
            value=path.read_bytes(),
            headers=frame_headers(meta),
        )
    producer.flush()
    producer.close()
    env = {
        **os.environ,
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "MASKWATCH_KAFKA_FRAMES_TOPIC": kafka.frames_topic,
        "MASKWATCH_KAFKA_RESULTS_TOPIC": kafka.results_topic,
        "MASKWATCH_KAFKA_DEAD_LETTER_TOPIC": kafka.dead_letter_topic,
        "MASKWATCH_DETECTOR_GROUP_ID": f"bench-{run}",
        "MASKWATCH_DETECTOR_RUNTIME__HEALTH_PORT": "0",
        "MASKWATCH_DETECTOR_MODEL_SERVER": model_server,
        "MASKWATCH_DETECTOR_MAX_AGE_S": "3600",
        # the serial baseline's detector
        "MASKWATCH_DETECTOR_DETECTOR__BACKEND": "retinaface-mobilenet",
        "MASKWATCH_DETECTOR_DETECTOR__MODEL_PATH": str(detector_model),
    }
    results: list[FrameResult] = []
    with tempfile.TemporaryFile() as log:
        worker = subprocess.Popen(
            [sys.executable, "-c", "from workers.cli import main; main()", "detector"],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        consumer = KafkaConsumer(
            bootstrap_servers=kafka.bootstrap_servers.split(","),
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        consumer.assign([TopicPartition(kafka.results_topic, p) for p in range(3)])
        deadline = time.monotonic() + timeout_s
        try:
            while len(results) < len(photos) and time.monotonic() < deadline:
                for records in consumer.poll(timeout_ms=500).values():
                    results += [
                        decode(FrameResult, r.value, SUPPORTED_RESULT_VERSIONS) for r in records
                    ]
        finally:
            worker.terminate()
            worker.wait(timeout=60)
            consumer.close()
            delete_topics(
                kafka,
                [
                    kafka.frames_topic,
                    kafka.results_topic,
                    kafka.dead_letter_topic,
                    kafka.alerts_topic,
                ],
            )
        if len(results) < len(photos):
            log.seek(0)
            raise click.ClickException(
                f"{len(results)}/{len(photos)} results in {timeout_s}s: "
                f"{log.read()[-2000:].decode(errors='replace')}"
            )
    times = sorted(r.processed_at for r in results)
    span = (times[-1] - times[0]).total_seconds()
    out = {
        key: statistics.median(getattr(r.timings_ms, key) for r in results)
        for key in ("decode_ms", "detect_ms", "classify_ms", "total_ms")
    }
    out |= {
        "fps": (len(results) - 1) / span if span > 0 else float("nan"),
        "faces_per_frame": sum(r.counts.faces for r in results) / len(results),
    }
    return out


@click.command()
@click.option(
    "--photos",
    type=click.Path(exists=True, path_type=Path),
    default=REPO.parent / "shared" / "data" / "crowd" / "images",
    show_default=True,
)
@click.option("--frames", default=40, show_default=True, help="Frames per mode.")
@click.option("--model-server", default="127.0.0.1:8500", show_default=True)
@click.option(
    "--weights",
    type=click.Path(exists=True, path_type=Path),
    default=REPO / "serving" / "models" / "mask_classifier",
    show_default=True,
    help="Classifier weights for the in-process baseline (what the server serves).",
)
@click.option(
    "--detector-model",
    type=click.Path(exists=True, path_type=Path),
    default=REPO.parent / "shared" / "models" / "retinaface_mnet025.onnx",
    show_default=True,
)
@click.option("--timeout-s", default=900.0, show_default=True)
def main(
    photos: Path,
    frames: int,
    model_server: str,
    weights: Path,
    detector_model: Path,
    timeout_s: float,
) -> None:
    chosen = sorted(photos.glob("*.jpg"))[:frames]
    config = detector_config(backend="retinaface-mobilenet", model_path=detector_model)
    click.echo(
        f"{len(chosen)} crowd frames, detector upscale_to_px={config.upscale_to_px}, "
        f"cpus={os.cpu_count()}, load average before={os.getloadavg()[0]:.1f}"
    )
    baseline = serial_baseline(chosen, config, weights)
    click.echo(f"load average after baseline={os.getloadavg()[0]:.1f}")
    worker = worker_run(chosen, model_server, detector_model, timeout_s)
    click.echo(f"load average after worker={os.getloadavg()[0]:.1f}")
    click.echo(f"{'':>18} {'serial':>10} {'worker':>10}")
    for key in ("fps", "faces_per_frame", "decode_ms", "detect_ms", "classify_ms", "total_ms"):
        click.echo(f"{key:>18} {baseline.get(key, float('nan')):>10.2f} {worker[key]:>10.2f}")
    click.echo(f"throughput ratio worker/serial: {worker['fps'] / baseline['fps']:.2f}x")
    click.echo("(medians per frame; worker classify_ms is the frame's share of batched calls)")


if __name__ == "__main__":
    main()
