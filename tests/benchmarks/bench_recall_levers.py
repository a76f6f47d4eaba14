"""Benchmark: the detector's recall levers (scale, tiles, flip) side by side.

    python -m tests.benchmarks.bench_recall_levers timing --photos 30
    python -m tests.benchmarks.bench_recall_levers detect --variants cf-1000,cf-1000-flip
    python -m tests.benchmarks.bench_recall_levers report

`timing` runs every variant round-robin over the same crowd test photos (each photo through
all variants before the next, so all see the same load) at the variant's own score threshold
and prints CPU and wall ms per frame. `detect` runs the chosen variants over the held-out test
photos and a calibration subset of the train + val photos (every `--calib-every`-th) at score
0.05, keeping each frame's detections (after NMS and box calibration) in var/levers/.
`report` sets each variant's score threshold on the calibration photos only (the highest
recall at precision ≥ 0.90 there) and prints, on the test split, face AP@0.5, the best recall
at precision ≥ 0.90 of the test curve, recall / precision at the calibrated threshold and
recall by face size, next to the timing run's CPU cost relative to the default.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import click
import cv2
import numpy as np

from devtools.evaluate.pipeline import Prediction, Truth, load_truth, report
from devtools.evaluate.scoring import best_recall_at_precision, match
from serving.dataset import crowd_photo_split
from workers.detector.backends import detector_config, make_detector
from workers.detector.backends.base import FaceDetector

CROWD = Path("../shared/data/crowd")
OUT = Path("var/levers")
MODELS = {
    "centerface": Path("../shared/models/centerface.onnx"),
    "scrfd-2.5g": Path("../shared/models/scrfd_2.5g_kps.onnx"),
    "retinaface-mobilenet": Path("../shared/models/retinaface_mnet025.onnx"),
}
VARIANTS: dict[str, dict[str, object]] = {
    "rf-1200": {"backend": "retinaface-mobilenet"},
    "cf-800": {"backend": "centerface", "upscale_to_px": 800},
    "cf-1000": {"backend": "centerface"},
    "cf-1200": {"backend": "centerface", "upscale_to_px": 1200},
    "cf-800-flip": {"backend": "centerface", "upscale_to_px": 800, "flip": True},
    "cf-1000-flip": {"backend": "centerface", "flip": True},
    "cf-1200-tile640": {"backend": "centerface", "upscale_to_px": 1200, "tile_px": 640},
    "scrfd-800": {"backend": "scrfd-2.5g", "upscale_to_px": 800},
    "scrfd-1000": {"backend": "scrfd-2.5g"},
    "scrfd-1200": {"backend": "scrfd-2.5g", "upscale_to_px": 1200},
    "scrfd-800-flip": {"backend": "scrfd-2.5g", "upscale_to_px": 800, "flip": True},
    "scrfd-1000-flip": {"backend": "scrfd-2.5g", "flip": True},
}
"""Variant name → backend config fields (on top of the backend's calibrated defaults)."""
DEFAULT = "cf-1000"
BASELINE = "rf-1200"
"""The issue's cost reference: the detector before CenterFace became the default."""


def photos(split: str, every: int = 1) -> list[Path]:
    """Annotated crowd photos of one split ('test' or 'calib': every n-th train + val)."""
    chosen = sorted(
        p
        for p in (CROWD / "images").glob("*.jpg")
        if (CROWD / "annotations" / f"{p.stem}.xml").is_file()
        and (crowd_photo_split(p.name) == "test") == (split == "test")
    )
    return chosen[::every]


def build(name: str, threads: int, score: float | None = None) -> FaceDetector:
    fields = dict(VARIANTS[name])
    fields["model_path"] = MODELS[str(fields["backend"])]
    fields["threads"] = threads
    if score is not None:
        fields["score_threshold"] = score
    return make_detector(detector_config(**fields))


def _names(variants: str) -> list[str]:
    names = list(VARIANTS) if variants == "all" else variants.split(",")
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise click.UsageError(f"unknown variants {unknown}; known: {list(VARIANTS)}")
    return names


@click.group()
def cli() -> None:
    """Time, run and score the detector variants."""


@cli.command()
@click.option("--photos", "count", type=int, default=30, show_default=True)
@click.option("--threads", type=int, default=1, show_default=True)
@click.option("--variants", default="all", show_default=True)
def timing(count: int, threads: int, variants: str) -> None:
    """CPU and wall ms per frame of each variant, round-robin, at its own score threshold."""
    names = _names(variants)
    chosen = photos("test")
    chosen = chosen[:: max(1, len(chosen) // count)][:count]
    images = [np.asarray(cv2.imread(str(p)), np.uint8) for p in chosen]
    detectors = {name: build(name, threads) for name in names}
    for detector in detectors.values():  # first-run allocations, not timed
        detector.detect(images[0])
    cpu_ms: dict[str, list[float]] = {name: [] for name in names}
    wall_ms: dict[str, list[float]] = {name: [] for name in names}
    for image in images:
        for name, detector in detectors.items():
            wall, cpu = time.perf_counter(), time.process_time()
            detector.detect(image)
            cpu_ms[name].append((time.process_time() - cpu) * 1000)
            wall_ms[name].append((time.perf_counter() - wall) * 1000)
    OUT.mkdir(parents=True, exist_ok=True)
    figures = {
        name: {"cpu_ms": float(np.mean(cpu_ms[name])), "wall_ms": float(np.median(wall_ms[name]))}
        for name in names
    }
    (OUT / "timing.json").write_text(json.dumps(figures, indent=1))
    click.echo(f"{len(images)} test photos, {threads} thread(s), round-robin")
    for name, row in figures.items():
        click.echo(f"  {name:>18}: cpu {row['cpu_ms']:6.0f} ms  wall median {row['wall_ms']:6.0f}")


@cli.command()
@click.option("--variants", default="all", show_default=True)
@click.option("--calib-every", type=int, default=3, show_default=True)
@click.option("--threads", type=int, default=1, show_default=True)
def detect(variants: str, calib_every: int, threads: int) -> None:
    """Detections at score 0.05 of each variant on the test and calibration photos."""
    names = _names(variants)
    detectors = {name: build(name, threads, score=0.05) for name in names}
    paths = photos("test") + photos("calib", calib_every)
    found: dict[str, dict[str, list[list[float]]]] = {name: {} for name in names}
    OUT.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    for index, path in enumerate(paths, 1):
        image = np.asarray(cv2.imread(str(path)), np.uint8)
        for name, detector in detectors.items():
            faces = detector.detect(image)
            rows = np.concatenate([faces.xyxy, faces.scores[:, None]], axis=1)
            found[name][path.name] = rows.round(2).tolist()
        if index % 25 == 0 or index == len(paths):
            click.echo(f"{index}/{len(paths)} photos, {time.perf_counter() - started:.0f} s")
            for name in names:
                (OUT / f"{name}.json").write_text(json.dumps(found[name]))


def _predictions(rows: list[list[float]]) -> list[Prediction]:
    return [Prediction((r[0], r[1], r[2], r[3]), 0, r[4], r[4]) for r in rows]


def calibrated_score(found: dict[str, list[list[float]]], truths: dict[str, Truth]) -> float:
    """The lowest score whose cut keeps precision ≥ 0.90 on the calibration photos."""
    scores, hits = [], []
    for name, truth in truths.items():
        rows = np.array(found[name], np.float64).reshape(-1, 5)
        scores.append(rows[:, 4])
        hits.append(match(rows[:, :4], rows[:, 4], truth.xyxy))
    total = sum(len(t.xyxy) for t in truths.values())
    return best_recall_at_precision(np.concatenate(scores), np.concatenate(hits), total, 0.9)[1]


@cli.command("report")
@click.option("--calib-every", type=int, default=3, show_default=True)
def report_cli(calib_every: int) -> None:
    """The side-by-side table of every variant that `detect` has written."""
    timing_path = OUT / "timing.json"
    timings = json.loads(timing_path.read_text()) if timing_path.is_file() else {}
    split = {"test": photos("test"), "calib": photos("calib", calib_every)}
    truths = {
        key: {p.name: load_truth(CROWD / "annotations" / f"{p.stem}.xml") for p in paths}
        for key, paths in split.items()
    }
    click.echo(
        "| variant | face AP@0.5 | recall @ P≥0.90 (test curve) | calibrated score | "
        "recall / precision there | recall <16 px | 16–32 px | ≥32 px | CPU ms/frame | "
        f"× {DEFAULT} | × {BASELINE} |"
    )
    click.echo("|---" * 11 + "|")
    for name in VARIANTS:
        path = OUT / f"{name}.json"
        if not path.is_file():
            continue
        found = json.loads(path.read_text())
        score = calibrated_score(found, truths["calib"])
        test = {n: _predictions(found[n]) for n in truths["test"]}
        row = report(truths["test"], test, score, classified=False)
        cpu = timings.get(name, {}).get("cpu_ms", float("nan"))
        base = timings.get(DEFAULT, {}).get("cpu_ms", float("nan"))
        old = timings.get(BASELINE, {}).get("cpu_ms", float("nan"))
        click.echo(
            f"| {name} | {row['face_ap']:.3f} | {row['face_recall_at_p90']:.3f} | {score:.2f} | "
            f"{row['face_recall']:.3f} / {row['face_precision']:.3f} | "
            f"{row['recall_lt16px']:.3f} | {row['recall_16to32px']:.3f} | "
            f"{row['recall_ge32px']:.3f} | {cpu:.0f} | {cpu / base:.2f} | {cpu / old:.2f} |"
        )


if __name__ == "__main__":
    cli()
