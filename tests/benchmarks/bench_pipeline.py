"""Benchmark: the research notebook's serial loop vs. the detector worker, inline and
pipelined, per classifier runtime of the model server; same crowd photos, one run.

    .venv/bin/python tests/benchmarks/bench_pipeline.py --frames 24 \\
        --model-base var/models --runtimes tensorflow,openvino-fp32,openvino-int8

- serial: the notebook's loop in this process: decode → detect → for each face, crop and
  classify it alone with the Keras fp32 classifier loaded in the process.
- worker: a real `maskwatch detector` process on fresh topics pre-filled with the photos as
  frames, classifying batched crops through a private `maskwatch serve` started per runtime
  (`--inference-runtime`), with `classify_in_flight` 0 (each call waited for) and 1
  (pipelined: detection of the next frames overlaps the call). Measured between the first
  and the last result (start-up excluded): frames/s from the results' `processed_at`, and
  core-seconds per frame = CPU time (user + system, all threads) the detector and the model
  server used in that window / the frames answered in it.

The detector is the same on both sides (default: the worker's default backend). Not a test:
prints figures, asserts nothing. The machine may be shared: the load average is printed
with every figure; compare variants within one run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import click
import cv2
import numpy as np
import psutil
from kafka import KafkaConsumer, TopicPartition

from imaging.crop import CropConfig, crop_face
from runtime.kafka import KafkaSettings, create_topics, delete_topics, make_producer
from schemas.common import decode
from schemas.frame import FrameMeta, frame_headers
from schemas.result import SUPPORTED_RESULT_VERSIONS, FrameResult
from workers.detector.backends import BackendConfig, detector_config, make_detector
from workers.detector.classifier import ClientConfig, GrpcClassifier

REPO = Path(__file__).resolve().parents[2]
MASKWATCH = [sys.executable, "-c", "from workers.cli import main; main()"]


@dataclass(frozen=True)
class Figure:
    """One variant's measurement."""

    dead_letters: int
    """Frames the worker gave up on (a classify call past its deadline on a loaded machine)."""
    fps: float
    core_s_per_frame: float
    server_core_s_per_frame: float
    """The model server's part of `core_s_per_frame` (0 for the serial loop)."""
    faces_per_frame: float
    load: float


def load_average() -> float:
    return os.getloadavg()[0]


def serial(photos: list[Path], config: BackendConfig, weights: Path) -> Figure:
    """The notebook's loop, one frame then one face at a time, all in this process."""
    from serving.model import build_classifier
    from serving.weights import load_compact

    model = build_classifier(128, weights="none")
    load_compact(model, weights)
    model.predict(np.zeros((1, 128, 128, 3), np.uint8), verbose=0)  # warm-up, not timed
    detector = make_detector(config)
    crop = CropConfig()
    faces = 0
    wall0, cpu0 = time.perf_counter(), time.process_time()
    for path in photos:
        image = np.asarray(
            cv2.imdecode(np.frombuffer(path.read_bytes(), np.uint8), cv2.IMREAD_COLOR), np.uint8
        )
        detections = detector.detect(image)
        for box in detections.xyxy:
            face = crop_face(
                image, (float(box[0]), float(box[1]), float(box[2]), float(box[3])), crop
            )
            model.predict(face[None, ..., ::-1], verbose=0)
        faces += len(detections)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    n = len(photos)
    return Figure(0, n / wall, cpu / n, 0.0, faces / n, load_average())


def cpu_s(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def wait_ready(target: str, server: subprocess.Popen[bytes], timeout_s: float) -> None:
    client = GrpcClassifier(ClientConfig(target=target, deadline_s=5.0))
    deadline = time.monotonic() + timeout_s
    try:
        while not client.ready():
            if server.poll() is not None or time.monotonic() > deadline:
                raise click.ClickException(f"model server on {target} did not become ready")
            time.sleep(0.5)
        client.classify(np.zeros((1, 128, 128, 3), np.uint8))  # first call compiles/warms
    finally:
        client.close()


@contextmanager
def model_server(
    model_base: Path, runtime: str, port: int, timeout_s: float
) -> Iterator[psutil.Process]:
    """A private `maskwatch serve` with one inference runtime, ready and warmed."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    with tempfile.TemporaryFile() as log:
        server = subprocess.Popen(
            [*MASKWATCH, "serve", "--model-base", str(model_base), "--host", "127.0.0.1",
             "--port", str(port), "--inference-runtime", runtime, "--runtime-health-port", "0",
             "--runtime-log-level", "WARNING"],
            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            try:
                wait_ready(f"127.0.0.1:{port}", server, timeout_s)
            except click.ClickException:
                log.seek(0)
                click.echo(log.read()[-3000:].decode(errors="replace"), err=True)
                raise
            yield psutil.Process(server.pid)
        finally:
            server.terminate()
            server.wait(timeout=60)


def fill_frames(kafka: KafkaSettings, photos: list[Path]) -> None:
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


def worker(
    photos: list[Path],
    server: psutil.Process,
    port: int,
    in_flight: int,
    detector_env: dict[str, str],
    classify_timeout_s: float,
    timeout_s: float,
) -> Figure:
    """A real worker process on fresh, pre-filled topics; the window is first → last result."""
    run = uuid.uuid4().hex[:8]
    kafka = KafkaSettings.with_topic_prefix(f"bench.{run}", partitions=3)
    create_topics(kafka)
    fill_frames(kafka, photos)
    env = {
        **os.environ,
        **detector_env,
        "MASKWATCH_KAFKA_FRAMES_TOPIC": kafka.frames_topic,
        "MASKWATCH_KAFKA_RESULTS_TOPIC": kafka.results_topic,
        "MASKWATCH_KAFKA_DEAD_LETTER_TOPIC": kafka.dead_letter_topic,
        "MASKWATCH_DETECTOR_GROUP_ID": f"bench-{run}",
        "MASKWATCH_DETECTOR_RUNTIME__HEALTH_PORT": "0",
        "MASKWATCH_DETECTOR_RUNTIME__LOG_LEVEL": "WARNING",
        "MASKWATCH_DETECTOR_MODEL_SERVER": f"127.0.0.1:{port}",
        "MASKWATCH_DETECTOR_MAX_AGE_S": "3600",
        "MASKWATCH_DETECTOR_CLASSIFY_IN_FLIGHT": str(in_flight),
        "MASKWATCH_DETECTOR_CLASSIFY_TIMEOUT_S": str(classify_timeout_s),
    }
    results: list[FrameResult] = []
    letters = 0
    cpu_at_first, server_at_first = 0.0, 0.0
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            [*MASKWATCH, "detector"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        detector = psutil.Process(process.pid)
        consumer = KafkaConsumer(
            bootstrap_servers=kafka.bootstrap_servers.split(","),
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        consumer.assign([TopicPartition(kafka.results_topic, p) for p in range(3)])
        deadline = time.monotonic() + timeout_s
        try:
            while len(results) < len(photos) and time.monotonic() < deadline:
                for records in consumer.poll(timeout_ms=50).values():
                    if not results:
                        server_at_first = cpu_s(server)
                        cpu_at_first = cpu_s(detector) + server_at_first
                    results += [
                        decode(FrameResult, r.value, SUPPORTED_RESULT_VERSIONS) for r in records
                    ]
            server_at_last = cpu_s(server)
            cpu_at_last = cpu_s(detector) + server_at_last
        finally:
            process.terminate()
            process.wait(timeout=60)
            consumer.close()
            names = [
                kafka.frames_topic,
                kafka.results_topic,
                kafka.dead_letter_topic,
                kafka.alerts_topic,
            ]
            delete_topics(kafka, names)
        if len(results) + letters < len(photos):
            log.seek(0)
            raise click.ClickException(
                f"{len(results)}/{len(photos)} results, {letters} dead letters in {timeout_s}s: "
                f"{log.read()[-2000:].decode(errors='replace')}"
            )
    times = sorted(r.processed_at for r in results)
    span_s = (times[-1] - times[0]).total_seconds()
    answered = len(results) - 1  # in the window: every result after the first
    return Figure(
        letters,
        answered / span_s if span_s > 0 else float("nan"),
        (cpu_at_last - cpu_at_first) / answered,
        (server_at_last - server_at_first) / answered,
        sum(r.counts.faces for r in results) / len(results),
        load_average(),
    )


def row(name: str, figure: Figure, baseline: Figure) -> str:
    return (
        f"{name:<32} {figure.fps:>8.2f} {figure.fps / baseline.fps:>7.2f}x "
        f"{figure.core_s_per_frame:>12.3f} {figure.server_core_s_per_frame:>12.3f} "
        f"{figure.faces_per_frame:>7.1f} {figure.dead_letters:>5} {figure.load:>6.1f}"
    )


@click.command()
@click.option(
    "--photos",
    type=click.Path(exists=True, path_type=Path),
    default=REPO.parent / "shared" / "data" / "crowd" / "images",
    show_default=True,
)
@click.option("--frames", default=24, show_default=True, help="Frames per variant.")
@click.option(
    "--model-base",
    type=click.Path(exists=True, path_type=Path),
    default=Path("var/models"),
    show_default=True,
    help="Exported versions (with openvino/ IR) the servers load.",
)
@click.option("--runtimes", default="tensorflow,openvino-fp32,openvino-int8", show_default=True)
@click.option(
    "--in-flight",
    "in_flights",
    default="0,1",
    show_default=True,
    help="classify_in_flight values per runtime (0 = inline).",
)
@click.option("--backend", default="centerface", show_default=True, help="Detector, both sides.")
@click.option(
    "--detector-model",
    type=click.Path(exists=True, path_type=Path),
    default=REPO.parent / "shared" / "models" / "centerface.onnx",
    show_default=True,
)
@click.option(
    "--weights",
    type=click.Path(exists=True, path_type=Path),
    default=REPO / "serving" / "models" / "mask_classifier",
    show_default=True,
    help="Classifier weights of the in-process serial loop (what export exported).",
)
@click.option("--port", default=8571, show_default=True, help="gRPC port of the private servers.")
@click.option(
    "--classify-timeout-s",
    default=60.0,
    show_default=True,
    help="The worker's classify deadline (generous: the machine may be overloaded).",
)
@click.option("--timeout-s", default=900.0, show_default=True)
def main(
    photos: Path,
    frames: int,
    model_base: Path,
    runtimes: str,
    in_flights: str,
    backend: str,
    detector_model: Path,
    weights: Path,
    port: int,
    classify_timeout_s: float,
    timeout_s: float,
) -> None:
    chosen = sorted(photos.glob("*.jpg"))[:frames]
    config = detector_config(backend=backend, model_path=detector_model)
    detector_env = {
        "MASKWATCH_DETECTOR_DETECTOR__BACKEND": backend,
        "MASKWATCH_DETECTOR_DETECTOR__MODEL_PATH": str(detector_model),
    }
    click.echo(
        f"{len(chosen)} crowd frames, detector {backend} (upscale_to_px={config.upscale_to_px}), "
        f"{os.cpu_count()} cpus, load average {load_average():.1f} at start"
    )
    baseline = serial(chosen, config, weights)
    lines = [row("serial (notebook loop, Keras)", baseline, baseline)]
    click.echo(lines[0])
    for runtime in runtimes.split(","):
        with model_server(model_base.resolve(), runtime, port, timeout_s) as server:
            for in_flight in (int(n) for n in in_flights.split(",")):
                figure = worker(
                    chosen, server, port, in_flight, detector_env, classify_timeout_s, timeout_s
                )
                mode = "pipelined" if in_flight else "inline"
                lines.append(row(f"worker {runtime} {mode}", figure, baseline))
                click.echo(lines[-1])
    click.echo(
        f"\n{'variant':<32} {'frames/s':>8} {'vs serial':>8} {'core-s/frame':>12} "
        f"{'of it server':>12} {'faces':>7} {'lost':>5} {'load':>6}"
    )
    click.echo("\n".join(lines))
    click.echo(
        "core-s/frame: serial = this process's CPU time / frames; worker = CPU time of the "
        "detector + model server between the first and last result / frames answered in it; "
        "lost: frames dead-lettered (not in frames/s)"
    )


if __name__ == "__main__":
    main()
