"""Benchmark: detection ms/frame of every backend at its calibrated operating point.

    python -m tests.benchmarks.bench_detectors --photos 40 --threads 2

On a shared machine the load changes from minute to minute, so backends are timed
round-robin: each photo goes through every backend in turn before the next photo, and all
see the same load. Prints per backend the median and mean wall-clock ms per frame (decode of
the JPEG excluded, detection + NMS + calibration included), the process CPU ms per frame, and
the ratio to the RetinaFace MobileNet-0.25 row (the previous default).
"""

from __future__ import annotations

import time
from pathlib import Path

import click
import cv2
import numpy as np

from serving.dataset import crowd_photo_split
from workers.detector.backends import detector_config, make_detector

CROWD = Path("../shared/data/crowd")
MODELS: dict[str, Path] = {
    "retinaface-mobilenet": Path("../shared/models/retinaface_mnet025.onnx"),
    "centerface": Path("../shared/models/centerface.onnx"),
    "scrfd-2.5g": Path("../shared/models/scrfd_2.5g_kps.onnx"),
}


@click.command()
@click.option("--photos", type=int, default=40, show_default=True)
@click.option("--threads", type=int, default=2, show_default=True)
def cli(photos: int, threads: int) -> None:
    """Round-robin timing of every backend over the same crowd test photos."""
    paths = sorted(
        p for p in (CROWD / "images").glob("*.jpg") if crowd_photo_split(p.name) == "test"
    )
    chosen = paths[:: max(1, len(paths) // photos)][:photos]
    detectors = {
        name: make_detector(detector_config(backend=name, model_path=path, threads=threads))
        for name, path in MODELS.items()
    }
    images = [np.asarray(cv2.imread(str(p)), np.uint8) for p in chosen]
    for detector in detectors.values():  # first-run allocations, not timed
        detector.detect(images[0])
    wall_ms: dict[str, list[float]] = {name: [] for name in detectors}
    cpu_ms: dict[str, list[float]] = {name: [] for name in detectors}
    for image in images:
        for name, detector in detectors.items():
            wall, cpu = time.perf_counter(), time.process_time()
            detector.detect(image)
            wall_ms[name].append((time.perf_counter() - wall) * 1000)
            cpu_ms[name].append((time.process_time() - cpu) * 1000)
    base = float(np.median(wall_ms["retinaface-mobilenet"]))
    click.echo(f"{len(images)} crowd test photos, {threads} threads, round-robin (busy machine)")
    for name in detectors:
        median = float(np.median(wall_ms[name]))
        click.echo(
            f"  {name:>22}: median {median:6.0f} ms  mean {np.mean(wall_ms[name]):6.0f} ms  "
            f"cpu {np.mean(cpu_ms[name]):6.0f} ms  ×{median / base:.2f} of retinaface-mobilenet"
        )


if __name__ == "__main__":
    cli()
