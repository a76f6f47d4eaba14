"""`maskwatch evaluate pipeline`: detect → crop → classify over PASCAL VOC photos.

Every photo goes through the worker's own core (`Core.prepare` / `Core.finish`, the original
JPEG bytes as the frame) and the classifier through the model server, so the figures are the
service's, not a notebook's. Prints per-class AP@0.5 (VOC all-point; `mask_weared_incorrect`
counts as `without_mask`), their mean, and face recall / precision at IoU 0.5 at the
detector's operating threshold. AP needs the whole precision/recall curve, so detection runs
at `--ap-min-score` and the operating threshold is applied afterwards (greedy NMS makes that
identical to detecting at the threshold).

Held-out photos: the crowd photos are split exactly as the classifier's training set split
them (`serving.dataset.split_of` on the photo's path as the training build saw it), so a
`--split test` evaluation never scores a photo whose faces the classifier trained on.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import click
import numpy as np
import numpy.typing as npt

from schemas.frame import FrameMeta, frame_headers
from schemas.result import FrameResult
from serving.client import ClientConfig, GrpcClassifier
from serving.crop import CropConfig
from serving.dataset import CLASSES, CROWD_SPLIT, SPLITS, VOC_LABELS, read_voc, split_of
from workers.detector.core import Core, CoreConfig, FrameMessage, PendingFrame
from workers.detector.detectors import BackendName, DetectorConfig, make_detector
from workers.detector.scoring import (
    PrecisionRecall,
    average_precision,
    best_recall_at_precision,
    match,
)

TRAINING_DATA_ROOT = Path("/work/shared/data")
"""The `data` folder the classifier's dataset was built from (`maskwatch train --data`): the
split key of a crowd photo is its path under it. Checked against the shipped training set:
the split of all 2,914 crowd faces matches this rule."""


def crowd_split(image_name: str) -> str:
    """'train' | 'val' | 'test' of a crowd photo, as the classifier's training saw it."""
    key = TRAINING_DATA_ROOT / "crowd" / "images" / image_name
    return SPLITS[split_of(str(key), **CROWD_SPLIT)]


@dataclass(frozen=True)
class Truth:
    """Annotated faces of one photo: N×4 boxes and class indices (CLASSES order)."""

    xyxy: npt.NDArray[np.float64]
    labels: npt.NDArray[np.int64]


@dataclass(frozen=True)
class Prediction:
    """One predicted face: box, class index, detector score, class score (det × P(class))."""

    xyxy: tuple[float, float, float, float]
    label: int
    detector_score: float
    score: float


def load_truth(annotation: Path) -> Truth:
    objects = read_voc(annotation)
    boxes = np.array([box for _, box in objects], np.float64).reshape(-1, 4)
    labels = np.array([VOC_LABELS[name] for name, _ in objects], np.int64)
    return Truth(boxes, labels)


def predictions_of(result: FrameResult) -> list[Prediction]:
    out = []
    for face in result.faces:
        label = CLASSES.index(face.label)
        p_label = face.mask_probability if label == 0 else 1.0 - face.mask_probability
        out.append(Prediction(face.xyxy, label, face.score, face.score * p_label))
    return out


def report(
    truths: dict[str, Truth],
    predictions: dict[str, list[Prediction]],
    operating_score: float,
    classified: bool,
) -> dict[str, float]:
    """AP per class (if classified), mAP, face AP, and face recall / precision at the
    operating detector score, pooled over photos."""
    out: dict[str, float] = {}
    classes = range(len(CLASSES)) if classified else ()
    for index in classes:
        scores, hits, total = [], [], 0
        for name, truth in truths.items():
            mine = [p for p in predictions[name] if p.label == index]
            boxes = np.array([p.xyxy for p in mine], np.float64).reshape(-1, 4)
            ranks = np.array([p.score for p in mine], np.float64)
            scores.append(ranks)
            hits.append(match(boxes, ranks, truth.xyxy[truth.labels == index]))
            total += int((truth.labels == index).sum())
        out[f"ap_{CLASSES[index]}"] = average_precision(
            np.concatenate(scores), np.concatenate(hits), total
        )
    if classified:
        out["map"] = float(np.mean([out[f"ap_{c}"] for c in CLASSES]))
    scores, hits, total = [], [], 0
    for name, truth in truths.items():
        boxes = np.array([p.xyxy for p in predictions[name]], np.float64).reshape(-1, 4)
        ranks = np.array([p.detector_score for p in predictions[name]], np.float64)
        scores.append(ranks)
        hits.append(match(boxes, ranks, truth.xyxy))
        total += len(truth.xyxy)
    all_scores, all_hits = np.concatenate(scores), np.concatenate(hits)
    kept = all_scores >= operating_score
    point = PrecisionRecall(int(all_hits[kept].sum()), int(kept.sum()), total)
    out["face_ap"] = average_precision(all_scores, all_hits, total)
    out["face_recall"], out["face_precision"] = point.recall, point.precision
    recall_90, threshold_90 = best_recall_at_precision(all_scores, all_hits, total, 0.9)
    out["face_recall_at_p90"], out["score_at_p90"] = recall_90, threshold_90
    out["faces"], out["photos"] = float(total), float(len(truths))
    return out


def run_photos(
    core: Core,
    classifier: GrpcClassifier | None,
    photos: list[Path],
) -> dict[str, FrameResult]:
    """Each photo through the worker's core (and the model server when classifying)."""
    results: dict[str, FrameResult] = {}
    now = datetime.now(UTC)
    for seq, path in enumerate(photos):
        payload = path.read_bytes()
        headers = frame_headers(FrameMeta(
            camera_id="evaluate", seq=seq, captured_at=now, width=1, height=1
        ))
        outcome = core.prepare(FrameMessage("evaluate", 0, seq, payload, headers), now)
        if not isinstance(outcome, PendingFrame):
            raise click.ClickException(f"{path}: {outcome}")
        if classifier is not None and len(outcome.detections):
            probabilities = classifier.classify(outcome.crops_rgb)
        else:
            probabilities = np.tile(np.array([1.0, 0.0], np.float32), (len(outcome.detections), 1))
        results[path.name] = core.finish(outcome, probabilities, 0.0, now)
    return results


@click.command("pipeline")
@click.option("--images", type=click.Path(exists=True, file_okay=False, path_type=Path),
              default=Path("../shared/data/crowd/images"), show_default=True,
              help="Folder of photos.")
@click.option("--annotations", type=click.Path(exists=True, file_okay=False, path_type=Path),
              default=None, help="VOC XML folder [default: IMAGES/../annotations].")
@click.option("--split", type=click.Choice(["test", "trainval", "all"]), default="test",
              show_default=True, help="Crowd split to score ('all' for other folders).")
@click.option("--classify/--no-classify", default=True, show_default=True,
              help="Classify through the model server (off: face detection only).")
@click.option("--model-server", default="127.0.0.1:8500", show_default=True)
@click.option("--model-name", default="mask_classifier", show_default=True)
@click.option("--detector", "backend", default="retinaface-mobilenet", show_default=True,
              type=click.Choice(["retinaface-mobilenet", "retinaface-resnet50"]))
@click.option("--model-path", type=click.Path(path_type=Path), default=None)
@click.option("--score-threshold", default=DetectorConfig().score_threshold, show_default=True,
              help="Operating detector score for face recall / precision.")
@click.option("--ap-min-score", default=0.05, show_default=True,
              help="Lowest detector score kept for the AP curves.")
@click.option("--upscale-to-px", default=DetectorConfig().upscale_to_px, show_default=True)
@click.option("--nms-threshold", default=DetectorConfig().nms_threshold, show_default=True)
@click.option("--out", type=click.Path(path_type=Path), default=Path("var/eval/predictions.json"),
              show_default=True, help="Predictions JSON: file name → [[x1,y1,x2,y2,label,score]].")
def cli(
    images: Path, annotations: Path | None, split: str, classify: bool, model_server: str,
    model_name: str, backend: BackendName, model_path: Path | None, score_threshold: float,
    ap_min_score: float, upscale_to_px: int, nms_threshold: float, out: Path,
) -> None:
    """AP@0.5 per class, mAP and face recall / precision of the whole pipeline on VOC photos."""
    annotations = annotations or images.parent / "annotations"
    photos = sorted(
        p for p in images.glob("*.jpg")
        if (annotations / f"{p.stem}.xml").is_file()
        and (split == "all" or (crowd_split(p.name) == "test") == (split == "test"))
    )
    if not photos:
        raise click.ClickException(f"no annotated photos in {images} for split {split}")
    config = DetectorConfig(
        backend=backend, model_path=model_path, score_threshold=min(ap_min_score, score_threshold),
        upscale_to_px=upscale_to_px, nms_threshold=nms_threshold,
    )
    core = Core(make_detector(config), CoreConfig(
        worker_id="evaluate", classifier_name=model_name, crop=CropConfig(),
        max_age_s=86400.0, max_frame_bytes=64 * 1024 * 1024,
    ))
    # An evaluation may share a CPU model server with other work: wait, don't fail.
    client = ClientConfig(target=model_server, model_name=model_name, deadline_s=120, max_batch=16)
    classifier = GrpcClassifier(client) if classify else None
    started = time.perf_counter()
    results = run_photos(core, classifier, photos)
    elapsed = time.perf_counter() - started
    predictions = {name: predictions_of(r) for name, r in results.items()}
    truths = {p.name: load_truth(annotations / f"{p.stem}.xml") for p in photos}
    figures = report(truths, predictions, score_threshold, classify)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        name: [[*p.xyxy, CLASSES[p.label], p.score] for p in preds]
        for name, preds in predictions.items()
    }, indent=None))
    click.echo(f"photos={len(photos)} split={split} detector={backend} "
               f"upscale_to_px={upscale_to_px} score_threshold={score_threshold} "
               f"classifier={'v' + str(classifier.model_version) if classifier else 'none'} "
               f"({elapsed / len(photos) * 1000:.0f} ms/photo)")
    for key, value in figures.items():
        click.echo(f"{key:>20}: {value:.4f}")
    click.echo(f"predictions: {out}")
