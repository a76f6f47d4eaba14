"""Benchmark: the detector's recall levers (scale, tiles, flip) side by side.

    python -m tests.benchmarks.bench_recall_levers timing --photos 30
    python -m tests.benchmarks.bench_recall_levers cache --backend centerface \
        --passes 800,800m,1000,1000m,1200 --split test      # and --split calib
    python -m tests.benchmarks.bench_recall_levers report

`timing` runs every variant (the real detector with its levers on) round-robin over the same
crowd test photos (each photo through all variants before the next, so all see the same load)
at the variant's own score threshold and prints CPU and wall ms per frame. `cache` runs one
network pass (a scale, plain or mirrored) over the held-out test photos or the calibration
subset (every `--calib-every`-th train + val photo) and keeps every candidate at score ≥ 0.05
before NMS, in photo pixels (var/levers/): on two busy cores a flip variant then costs only
its mirrored pass, since its plain pass is the no-flip variant's. `report` pools each
variant's passes through the backend's own NMS and box calibration (`to_detections`, as
`flip` does), sets its score threshold on the calibration photos only (the highest recall at
precision ≥ 0.90 there) and prints, on the test split, face AP@0.5, the best recall at
precision ≥ 0.90 of the test curve, recall / precision at the calibrated threshold and
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
from imaging.views import mirror_boxes
from serving.dataset import crowd_photo_split
from workers.detector.backends import detector_config, make_detector
from workers.detector.backends.base import FaceDetector
from workers.detector.backends.configs import OnnxBackendConfig
from workers.detector.backends.shared import Candidates, OnnxFaceDetector, to_detections

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
    "scrfd-1000": {"backend": "scrfd-2.5g"},
    "scrfd-1200": {"backend": "scrfd-2.5g", "upscale_to_px": 1200},
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


def passes_of(name: str) -> list[tuple[str, int, bool]]:
    """The network passes (backend, scale px, mirrored) whose pooled candidates are `name`."""
    fields = VARIANTS[name]
    backend = str(fields["backend"])
    scale = int(str(fields.get("upscale_to_px", 1000)))
    return [(backend, scale, False)] + ([(backend, scale, True)] if fields.get("flip") else [])


def pass_file(backend: str, scale: int, mirrored: bool, split: str) -> Path:
    return OUT / f"{backend}-{scale}{'-mirror' if mirrored else ''}-{split}.npz"


@cli.command()
@click.option("--backend", type=click.Choice(["centerface", "scrfd-2.5g"]), required=True)
@click.option("--passes", required=True, help="scale[m],… e.g. 1000,1000m,1200 (m: mirrored)")
@click.option("--split", type=click.Choice(["test", "calib"]), required=True)
@click.option("--calib-every", type=int, default=4, show_default=True)
def cache(backend: str, passes: str, split: str, calib_every: int) -> None:
    """Every candidate (score ≥ 0.05, before NMS) of one split's photos, per pass, in photo
    pixels; a mirrored pass runs on the flipped photo and maps back (what `flip` pools)."""
    paths = photos(split, calib_every if split == "calib" else 1)
    OUT.mkdir(parents=True, exist_ok=True)
    for spec in passes.split(","):
        mirrored, scale = spec.endswith("m"), int(spec.rstrip("m"))
        detector = make_detector(
            detector_config(
                backend=backend,
                model_path=MODELS[backend],
                score_threshold=0.05,
                upscale_to_px=scale,
                max_side_px=max(scale, 1280),
                threads=1,
            )
        )
        if not isinstance(detector, OnnxFaceDetector):
            raise click.UsageError(f"{backend} has no raw candidates")
        arrays: dict[str, np.ndarray] = {}
        started = time.perf_counter()
        for path in paths:
            image = np.asarray(cv2.imread(str(path)), np.uint8)
            found = detector.candidates(np.ascontiguousarray(image[:, ::-1]) if mirrored else image)
            xyxy = found.xyxy / found.scale
            arrays[f"{path.name}:xyxy"] = mirror_boxes(xyxy, image.shape[1]) if mirrored else xyxy
            arrays[f"{path.name}:scores"] = found.scores
        out = pass_file(backend, scale, mirrored, split)
        np.savez_compressed(out, allow_pickle=False, **arrays)
        click.echo(f"{out}: {len(paths)} photos, {time.perf_counter() - started:.0f} s")


def load_pass(backend: str, scale: int, mirrored: bool, split: str) -> dict[str, np.ndarray]:
    """A cached pass; an unmirrored calibration pass may come from calibrate_detectors'
    cache of all train + val photos (var/calib), the same candidates."""
    path = pass_file(backend, scale, mirrored, split)
    if not path.is_file() and split == "calib" and not mirrored:
        path = Path("var/calib") / f"{backend}-{scale}.npz"
    with np.load(path) as data:
        return {key: data[key] for key in data.files}


def pooled(name: str, split: str, paths: list[Path]) -> dict[str, list[Prediction]] | None:
    """Variant `name`'s detections per photo: its passes' candidates pooled, then the
    backend's own NMS and box calibration (`to_detections`); None if a pass is missing or
    the variant tiles (tiles are timed only: the passes are whole frames)."""
    if "tile_px" in VARIANTS[name]:
        return None
    fields = {k: v for k, v in VARIANTS[name].items() if k != "flip"}
    config = detector_config(**fields)
    if not isinstance(config, OnnxBackendConfig):
        return None
    try:
        loaded = [load_pass(*spec, split) for spec in passes_of(name)]
    except FileNotFoundError:
        return None
    out = {}
    for path in paths:
        height, width = np.asarray(cv2.imread(str(path)), np.uint8).shape[:2]
        xyxy = np.concatenate([p[f"{path.name}:xyxy"] for p in loaded]).astype(np.float32)
        scores = np.concatenate([p[f"{path.name}:scores"] for p in loaded]).astype(np.float32)
        faces = to_detections(Candidates(xyxy, scores, None, 1.0), (width, height), config)
        out[path.name] = [
            Prediction((float(b[0]), float(b[1]), float(b[2]), float(b[3])), 0, float(s), float(s))
            for b, s in zip(faces.xyxy, faces.scores, strict=True)
        ]
    return out


def calibrated_score(found: dict[str, list[Prediction]], truths: dict[str, Truth]) -> float:
    """The lowest score whose cut keeps precision ≥ 0.90 on the calibration photos."""
    scores, hits = [], []
    for name, truth in truths.items():
        boxes = np.array([p.xyxy for p in found[name]], np.float64).reshape(-1, 4)
        ranks = np.array([p.detector_score for p in found[name]], np.float64)
        scores.append(ranks)
        hits.append(match(boxes, ranks, truth.xyxy))
    total = sum(len(t.xyxy) for t in truths.values())
    return best_recall_at_precision(np.concatenate(scores), np.concatenate(hits), total, 0.9)[1]


@cli.command("report")
@click.option("--calib-every", type=int, default=4, show_default=True)
def report_cli(calib_every: int) -> None:
    """The side-by-side table of every variant whose passes `cache` has written."""
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
    nan = {"cpu_ms": float("nan")}
    base = timings.get(DEFAULT, nan)["cpu_ms"]
    old = timings.get(BASELINE, nan)["cpu_ms"]
    for name in VARIANTS:
        calib, test = pooled(name, "calib", split["calib"]), pooled(name, "test", split["test"])
        cpu = timings.get(name, nan)["cpu_ms"]
        if calib is None or test is None:
            click.echo(f"| {name} | | | | | | | | {cpu:.0f} | {cpu / base:.2f} | {cpu / old:.2f} |")
            continue
        score = calibrated_score(calib, truths["calib"])
        row = report(truths["test"], test, score, classified=False)
        click.echo(
            f"| {name} | {row['face_ap']:.3f} | {row['face_recall_at_p90']:.3f} | {score:.2f} | "
            f"{row['face_recall']:.3f} / {row['face_precision']:.3f} | "
            f"{row['recall_lt16px']:.3f} | {row['recall_16to32px']:.3f} | "
            f"{row['recall_ge32px']:.3f} | {cpu:.0f} | {cpu / base:.2f} | {cpu / old:.2f} |"
        )


if __name__ == "__main__":
    cli()
