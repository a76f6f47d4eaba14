"""`maskwatch evaluate classifier`: score the classifier on the held-out split.

Reported separately for (a) web / Kaggle crops and (b) crowd faces, because a model can do
well on the first (large, clean faces; resolution differs between Kaggle's classes) and still
fail on the second, which is what cameras see. Writes a JSON report and a precision-recall
PNG per set next to it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import numpy as np
import numpy.typing as npt
from pydantic import Field
from pydantic_settings import SettingsConfigDict

from serving.crop import CropConfig
from serving.dataset import SOURCES, SPLITS, decode_all, ensure_packed, load, select
from serving.metrics import classification_report
from workers.common.settings import ServiceSettings, load_settings, settings_options

SETS = {
    "crops": ("web", "kaggle"),
    "crowd": ("crowd",),
}


class EvaluateClassifierSettings(ServiceSettings):
    """Classifier evaluation options (env prefix MASKWATCH_EVALUATE_CLASSIFIER_)."""

    model_config = SettingsConfigDict(env_prefix="MASKWATCH_EVALUATE_CLASSIFIER_")

    data: Path = Field(Path("../shared/data"), description="Folder with crops/ and crowd/.")
    dataset: Path = Field(
        Path("var/train/dataset.npz"), description="Packed dataset; built from --data if missing."
    )
    weights: Path | None = Field(
        None, description="Compact weights folder (default: the shipped classifier)."
    )
    split: str = Field("test", pattern="^(train|val|test)$", description="Split to score.")
    out: Path = Field(Path("var/evaluate/classifier"), description="Folder for report + plots.")
    batch_size: int = Field(64, ge=1, le=1024, description="Crops per model call.")


def precision_recall_curve(
    truth_positive: npt.NDArray[np.bool_], scores: npt.NDArray[np.floating]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Precision and recall at every score threshold (highest score first)."""
    order = np.argsort(-scores, kind="stable")
    hits = truth_positive[order].astype(np.float64)
    true_positives = np.cumsum(hits)
    precision = true_positives / np.arange(1, len(hits) + 1)
    recall = true_positives / max(hits.sum(), 1.0)
    return precision, recall


def average_precision(precision: npt.NDArray[np.float64], recall: npt.NDArray[np.float64]) -> float:
    """All-point interpolated AP (the area under the monotone precision envelope)."""
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    steps = np.diff(np.concatenate([[0.0], recall]))
    return float(np.sum(steps * envelope))


def report_for(
    truth: npt.NDArray[np.int8], probabilities: npt.NDArray[np.float32]
) -> dict[str, Any]:
    """Classification report plus per-class AP from the probabilities."""
    report = classification_report(truth, probabilities.argmax(axis=1))
    for index, name in enumerate(report["per_class"]):
        precision, recall = precision_recall_curve(truth == index, probabilities[:, index])
        report["per_class"][name]["average_precision"] = average_precision(precision, recall)
    return report


def plot_pr(
    path: Path, title: str, truth: npt.NDArray[np.int8], probabilities: npt.NDArray[np.float32]
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from schemas.model_server import CLASSES

    figure, axes = plt.subplots(figsize=(5, 4), dpi=120)
    for index, name in enumerate(CLASSES):
        precision, recall = precision_recall_curve(truth == index, probabilities[:, index])
        axes.plot(
            recall, precision, label=f"{name} (AP {average_precision(precision, recall):.3f})"
        )
    axes.set(xlabel="recall", ylabel="precision", title=title, xlim=(0, 1), ylim=(0, 1.02))
    axes.grid(alpha=0.3)
    axes.legend(loc="lower left")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def evaluate(settings: EvaluateClassifierSettings) -> dict[str, Any]:
    """Score the classifier on `settings.split`, per set; writes report.json and PR plots."""
    from serving.model import SHIPPED_WEIGHTS, build_classifier
    from serving.weights import load_compact

    arrays = load(ensure_packed(settings.dataset, settings.data, CropConfig()))
    chosen = select(arrays, arrays["split"] == SPLITS.index(settings.split))
    crops_rgb = np.ascontiguousarray(decode_all(chosen)[..., ::-1])
    model = build_classifier(int(chosen["size_px"]), "none")
    weights = settings.weights or SHIPPED_WEIGHTS
    load_compact(model, weights)
    probabilities = model.predict(crops_rgb, batch_size=settings.batch_size, verbose=0)
    settings.out.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"weights": str(weights), "split": settings.split, "sets": {}}
    for set_name, sources in SETS.items():
        mask = np.isin(chosen["source"], [SOURCES.index(s) for s in sources])
        truth = np.asarray(chosen["label"][mask], dtype=np.int8)
        result["sets"][set_name] = report_for(truth, probabilities[mask])
        plot_pr(
            settings.out / f"pr_{set_name}.png",
            f"{set_name} ({settings.split})",
            truth,
            probabilities[mask],
        )
    (settings.out / "report.json").write_text(json.dumps(result, indent=1))
    return result


@click.command("classifier")
@settings_options(EvaluateClassifierSettings)
def cli(**options: object) -> None:
    """Per-class precision / recall / F1, macro-F1 and confusion matrix on held-out crops."""
    settings = load_settings(EvaluateClassifierSettings, options)
    result = evaluate(settings)
    for set_name, report in result["sets"].items():
        click.echo(f"{set_name}: macro-F1 {report['macro_f1']:.4f}  samples {report['samples']}")
        for name, scores in report["per_class"].items():
            click.echo(
                f"  {name:<13} P {scores['precision']:.4f}  R {scores['recall']:.4f}  "
                f"F1 {scores['f1']:.4f}  AP {scores['average_precision']:.4f}  "
                f"n {scores['support']}"
            )
        click.echo(f"  confusion (rows truth, cols predicted): {report['confusion_matrix']}")
    click.echo(f"report: {settings.out / 'report.json'}")
