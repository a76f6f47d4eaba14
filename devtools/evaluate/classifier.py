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

from imaging.crop import CropConfig
from imaging.precision import average_precision, precision_recall_curve
from runtime.settings import ServiceSettings, load_settings, settings_options
from schemas.model_server import CLASSES
from serving.dataset import SOURCES, SPLITS, decode_all, ensure_packed, load, select
from serving.metrics import classification_report

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


def report_for(
    truth: npt.NDArray[np.int8], probabilities: npt.NDArray[np.float32]
) -> dict[str, Any]:
    """Classification report plus per-class AP from the probabilities."""
    report = classification_report(truth, probabilities.argmax(axis=1))
    for index, name in enumerate(report["per_class"]):
        positives = truth == index
        report["per_class"][name]["average_precision"] = average_precision(
            probabilities[:, index], positives, int(positives.sum())
        )
    return report


def plot_pr(
    path: Path, title: str, truth: npt.NDArray[np.int8], probabilities: npt.NDArray[np.float32]
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(5, 4), dpi=120)
    for index, name in enumerate(CLASSES):
        positives, scores = truth == index, probabilities[:, index]
        precision, recall = precision_recall_curve(scores, positives, int(positives.sum()))
        ap = average_precision(scores, positives, int(positives.sum()))
        axes.plot(recall, precision, label=f"{name} (AP {ap:.3f})")
    axes.set(xlabel="recall", ylabel="precision", title=title, xlim=(0, 1), ylim=(0, 1.02))
    axes.grid(alpha=0.3)
    axes.legend(loc="lower left")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def evaluate(settings: EvaluateClassifierSettings) -> dict[str, Any]:
    """Score the classifier on `settings.split`, per set; writes report.json and PR plots."""
    from serving.model import build_classifier
    from serving.shipped import SHIPPED_WEIGHTS
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
