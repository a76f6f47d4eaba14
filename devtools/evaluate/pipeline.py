"""`maskwatch evaluate pipeline`: detect → crop → classify over PASCAL VOC photos.

Every photo goes through the worker's own core (`Core.prepare` / `Core.finish`, the original
JPEG bytes as the frame) and the classifier through the model server, so the figures are the
service's, not a notebook's. Prints per-class AP@0.5 (VOC all-point; `mask_weared_incorrect`
counts as `without_mask`), their mean, and face recall / precision at IoU 0.5 at the
detector's operating threshold. AP needs the whole precision/recall curve, so detection runs
at `--ap-min-score` and the operating threshold is applied afterwards (greedy NMS makes that
identical to detecting at the threshold).

Held-out photos: the crowd photos are split exactly as the classifier's training set split
them (`serving.dataset.crowd_photo_split`), so a
`--split test` evaluation never scores a photo whose faces the classifier trained on.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import click
import numpy as np
import numpy.typing as npt
from pydantic import Field
from pydantic_settings import SettingsConfigDict

from devtools.evaluate.scoring import (
    PrecisionRecall,
    best_recall_at_precision,
    match,
    matched_truths,
)
from imaging.crop import CropConfig
from imaging.jpeg import jpeg_size_px
from imaging.precision import average_precision
from runtime.settings import ServiceSettings, load_settings, settings_options
from schemas.frame import FrameMeta, frame_headers
from schemas.model_server import CLASSES, MODEL_NAME
from schemas.result import FrameResult
from serving.dataset import VOC_LABELS, crowd_photo_split, read_voc
from workers.detector.backends import DetectorConfig, detector_config, make_detector
from workers.detector.classifier import ClientConfig, GrpcClassifier
from workers.detector.core import Core, CoreConfig, FrameMessage, PendingFrame


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
    out.update(recall_by_size(truths, predictions, operating_score))
    out["face_recall"], out["face_precision"] = point.recall, point.precision
    recall_90, threshold_90 = best_recall_at_precision(all_scores, all_hits, total, 0.9)
    out["face_recall_at_p90"], out["score_at_p90"] = recall_90, threshold_90
    out["faces"], out["photos"] = float(total), float(len(truths))
    return out


SIZE_BINS_PX = ((0.0, 16.0), (16.0, 32.0), (32.0, float("inf")))
SIZE_BIN_NAMES = ("lt16", "16to32", "ge32")


def face_size_px(xyxy: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Face size as the geometric mean of box width and height (N boxes → N sizes)."""
    width = np.clip(xyxy[:, 2] - xyxy[:, 0], 0, None)
    height = np.clip(xyxy[:, 3] - xyxy[:, 1], 0, None)
    return np.asarray(np.sqrt(width * height), np.float64)


def recall_by_size(
    truths: dict[str, Truth], predictions: dict[str, list[Prediction]], operating_score: float
) -> dict[str, float]:
    """Face recall at the operating score per annotated face size (< 16, 16–32, ≥ 32 px):
    which faces the detector misses. Truths are matched VOC-style (IoU 0.5) per photo."""
    found = np.zeros(len(SIZE_BINS_PX), np.int64)
    counts = np.zeros(len(SIZE_BINS_PX), np.int64)
    for name, truth in truths.items():
        kept = [p for p in predictions[name] if p.detector_score >= operating_score]
        boxes = np.array([p.xyxy for p in kept], np.float64).reshape(-1, 4)
        ranks = np.array([p.detector_score for p in kept], np.float64)
        matched = matched_truths(boxes, ranks, truth.xyxy)
        sizes = face_size_px(truth.xyxy)
        for index, (low, high) in enumerate(SIZE_BINS_PX):
            in_bin = (sizes >= low) & (sizes < high)
            counts[index] += int(in_bin.sum())
            found[index] += int((in_bin & matched).sum())
    out = {}
    for index, label in enumerate(SIZE_BIN_NAMES):
        out[f"recall_{label}px"] = float(found[index] / counts[index]) if counts[index] else 0.0
        out[f"faces_{label}px"] = float(counts[index])
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
        width, height = jpeg_size_px(payload) or (1, 1)  # the worker checks the headers' size
        headers = frame_headers(
            FrameMeta(camera_id="evaluate", seq=seq, captured_at=now, width=width, height=height)
        )
        outcome = core.prepare(FrameMessage("evaluate", 0, seq, payload, headers), now)
        if not isinstance(outcome, PendingFrame):
            raise click.ClickException(f"{path}: {outcome}")
        if classifier is not None and len(outcome.detections):
            probabilities = classifier.classify(outcome.crops_rgb)
        else:
            probabilities = np.tile(np.array([1.0, 0.0], np.float32), (len(outcome.detections), 1))
        finished = core.finish(outcome, probabilities, 0.0, now)
        if not isinstance(finished, FrameResult):
            raise click.ClickException(f"{path}: {finished.reason}: {finished.message}")
        results[path.name] = finished
    return results


class EvaluatePipelineSettings(ServiceSettings):
    """Pipeline evaluation options (env prefix MASKWATCH_EVALUATE_PIPELINE_)."""

    model_config = SettingsConfigDict(env_prefix="MASKWATCH_EVALUATE_PIPELINE_")

    images: Path = Field(Path("../shared/data/crowd/images"), description="Folder of photos.")
    annotations: Path | None = Field(None, description="VOC XML folder (default: ../annotations).")
    split: Literal["test", "trainval", "all"] = Field(
        "test", description="Crowd split to score ('all' for other folders)."
    )
    classify: bool = Field(True, description="Classify through the model server (off: faces only).")
    model_server: str = Field("127.0.0.1:8500", min_length=3, description="gRPC host:port.")
    model_name: str = Field(MODEL_NAME, min_length=1, description="Served model name.")
    detector: DetectorConfig = Field(
        default_factory=detector_config,
        description="Face detector backend and its config; its score threshold is the "
        "operating point of face recall / precision.",
    )
    crop: CropConfig = Field(default_factory=CropConfig, description="Face crops.")
    ap_min_score: float = Field(0.05, ge=0, le=1, description="Lowest score kept for AP curves.")
    out: Path = Field(
        Path("var/eval/predictions.json"),
        description="Predictions JSON: file name → [[x1, y1, x2, y2, label, score]].",
    )


@click.command("pipeline")
@settings_options(EvaluatePipelineSettings)
def cli(**options: object) -> None:
    """AP@0.5 per class, mAP and face recall / precision of the whole pipeline on VOC photos."""
    settings = load_settings(EvaluatePipelineSettings, options)
    images, split, out = settings.images, settings.split, settings.out
    annotations = settings.annotations or images.parent / "annotations"
    photos = sorted(
        p
        for p in images.glob("*.jpg")
        if (annotations / f"{p.stem}.xml").is_file()
        and (split == "all" or (crowd_photo_split(p.name) == "test") == (split == "test"))
    )
    if not photos:
        raise click.ClickException(f"no annotated photos in {images} for split {split}")
    operating_score = settings.detector.score_threshold
    config = settings.detector.model_copy(
        update={"score_threshold": min(settings.ap_min_score, operating_score)}
    )
    core = Core(
        make_detector(config),
        CoreConfig(
            worker_id="evaluate",
            classifier_name=settings.model_name,
            crop=settings.crop,
            max_age_s=86400.0,
            max_frame_bytes=64 * 1024 * 1024,
        ),
    )
    # An evaluation may share a CPU model server with other work: wait, don't fail.
    client = ClientConfig(
        target=settings.model_server, model_name=settings.model_name, deadline_s=120, max_batch=16
    )
    classifier = GrpcClassifier(client) if settings.classify else None
    started = time.perf_counter()
    results = run_photos(core, classifier, photos)
    elapsed = time.perf_counter() - started
    predictions = {name: predictions_of(r) for name, r in results.items()}
    truths = {p.name: load_truth(annotations / f"{p.stem}.xml") for p in photos}
    figures = report(truths, predictions, operating_score, settings.classify)
    detect_ms = [r.timings_ms.detect_ms for r in results.values()]
    figures["detect_ms_per_frame"] = float(np.mean(detect_ms))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                name: [[*p.xyxy, CLASSES[p.label], p.score] for p in preds]
                for name, preds in predictions.items()
            },
            indent=None,
        )
    )
    click.echo(
        f"photos={len(photos)} split={split} detector={settings.detector.backend} "
        f"upscale_to_px={settings.detector.upscale_to_px} "
        f"nms={settings.detector.nms_threshold} "
        f"score_threshold={operating_score} "
        f"classifier={'v' + str(classifier.model_version) if classifier else 'none'} "
        f"({elapsed / len(photos) * 1000:.0f} ms/photo)"
    )
    for key, value in figures.items():
        click.echo(f"{key:>20}: {value:.4f}")
    click.echo(f"predictions: {out}")
