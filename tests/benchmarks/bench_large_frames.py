"""Benchmark: the detection-scale policy on camera-sized frames (crowd photos upscaled).

    python -m tests.benchmarks.bench_large_frames --photos 40 --backend centerface

Each crowd test photo is enlarged to fit a 1280×720 or 1920×1080 canvas (aspect kept, black
borders; annotated boxes scaled with it), as a camera at that resolution would show the same
scene. Per frame size, the backend runs with its calibrated policy (frames whose longer side
exceeds `max_side_px` are downscaled to it) and, side by side, with the frame at its own
size (no downscaling) and with a smaller cap, so the table shows what the cap costs in
recall and saves in time. Prints face AP@0.5, recall at precision ≥ 0.9, recall of faces
that are < 32 px *in the frame*, and detection ms/frame (a busy machine: compare rows of one
run, not runs).
"""

from __future__ import annotations

import time
from pathlib import Path

import click
import cv2
import numpy as np

from devtools.evaluate.pipeline import face_size_px, load_truth
from devtools.evaluate.scoring import best_recall_at_precision, match, matched_truths
from imaging.precision import average_precision
from serving.dataset import crowd_photo_split
from workers.detector.backends import detector_config, make_detector

CROWD = Path("../shared/data/crowd")
MODELS = {
    "scrfd-2.5g": Path("../shared/models/scrfd_2.5g_kps.onnx"),
    "centerface": Path("../shared/models/centerface.onnx"),
    "retinaface-mobilenet": Path("../shared/models/retinaface_mnet025.onnx"),
}
FRAMES_WH = ((1280, 720), (1920, 1080))


def on_canvas(
    image: np.ndarray, boxes: np.ndarray, frame_wh: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """The photo enlarged to fit `frame_wh` (top-left, black borders) and its boxes."""
    scale = min(frame_wh[0] / image.shape[1], frame_wh[1] / image.shape[0])
    resized = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
    canvas = np.zeros((frame_wh[1], frame_wh[0], 3), np.uint8)
    canvas[: resized.shape[0], : resized.shape[1]] = resized
    return canvas, boxes * scale


@click.command()
@click.option("--backend", type=click.Choice(list(MODELS)), default="centerface")
@click.option("--photos", type=int, default=40, show_default=True)
@click.option("--threads", type=int, default=2, show_default=True)
@click.option("--caps", default="960,1280,native", show_default=True, help="max_side_px values.")
def cli(backend: str, photos: int, threads: int, caps: str) -> None:
    """Face AP / recall / ms per frame size and downscaling cap."""
    paths = sorted(
        p for p in (CROWD / "images").glob("*.jpg") if crowd_photo_split(p.name) == "test"
    )
    chosen = paths[:: max(1, len(paths) // photos)][:photos]
    base = detector_config(backend=backend, model_path=MODELS[backend])
    click.echo(f"{backend}: {len(chosen)} test photos; calibrated max_side_px={base.max_side_px}")
    for frame_wh in FRAMES_WH:
        sides = {max(frame_wh) if cap == "native" else int(cap) for cap in caps.split(",")}
        for max_side in sorted(side for side in sides if side <= max(frame_wh)):
            config = detector_config(
                backend=backend,
                model_path=MODELS[backend],
                score_threshold=0.05,
                max_side_px=max_side,
                upscale_to_px=min(base.upscale_to_px, max_side),
                threads=threads,
            )
            detector = make_detector(config)
            scores, hits, small_found, small_total, total, times_ms = [], [], 0, 0, 0, []
            for path in chosen:
                truth = load_truth(CROWD / "annotations" / f"{path.stem}.xml").xyxy
                image, boxes = on_canvas(
                    np.asarray(cv2.imread(str(path)), np.uint8), truth, frame_wh
                )
                started = time.perf_counter()
                found = detector.detect(image)
                times_ms.append((time.perf_counter() - started) * 1000)
                scores.append(found.scores)
                hits.append(match(found.xyxy, found.scores, boxes))
                keep = found.scores >= base.score_threshold
                taken = matched_truths(found.xyxy[keep], found.scores[keep], boxes)
                small = face_size_px(boxes) < 32
                small_found += int((taken & small).sum())
                small_total += int(small.sum())
                total += len(boxes)
            all_scores, all_hits = np.concatenate(scores), np.concatenate(hits)
            recall, _ = best_recall_at_precision(all_scores, all_hits, total, 0.9)
            click.echo(
                f"  {frame_wh[0]}x{frame_wh[1]} max_side_px={max_side:>5}: "
                f"face AP {average_precision(all_scores, all_hits, total):.3f}  "
                f"recall@P90 {recall:.3f}  recall <32px {small_found}/{small_total}  "
                f"{np.median(times_ms):.0f} ms/frame (median)"
            )


if __name__ == "__main__":
    cli()
