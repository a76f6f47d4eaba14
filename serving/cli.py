"""CLI commands of the model side: `maskwatch train` and `maskwatch export`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click
from pydantic import Field
from pydantic_settings import SettingsConfigDict

from runtime.settings import ServiceSettings, load_settings, settings_options
from schemas.model_server import MODEL_NAME
from serving.shipped import SHIPPED_WEIGHTS

if TYPE_CHECKING:
    from serving.export_openvino import OpenVinoExport


class TrainSettings(ServiceSettings):
    """Training options (env prefix MASKWATCH_TRAIN_)."""

    model_config = SettingsConfigDict(env_prefix="MASKWATCH_TRAIN_")

    data: Path = Field(
        Path("../shared/data"), description="Folder with crops/ and crowd/ (the shared layout)."
    )
    dataset: Path = Field(
        Path("var/train/dataset.npz"),
        description="Packed dataset; built from --data when it does not exist.",
    )
    out: Path = Field(Path("var/train/run"), description="Run folder: checkpoints, logs, weights.")
    epochs: int = Field(30, ge=1, le=1000, description="Epochs to train (a resumed run counts on).")
    batch_size: int = Field(32, ge=1, le=1024, description="Batch size.")
    input_px: int = Field(128, ge=32, le=512, description="Classifier input side in pixels.")
    learning_rate: float = Field(1e-4, gt=0, le=1.0, description="Adam learning rate.")
    decay_per_epoch: float = Field(1e-4, ge=0, le=1.0, description="Inverse-time decay per epoch.")
    weights: str = Field("imagenet", pattern="^(imagenet|none)$", description="imagenet or none.")
    kaggle_per_epoch: int = Field(3000, ge=0, description="Kaggle-12k crops drawn per epoch.")
    crowd_repeat: int = Field(
        3, ge=1, le=20, description="Times each crowd face appears per epoch."
    )
    workers: int = Field(4, ge=1, le=64, description="Augmentation threads.")
    ema_momentum: float | None = Field(
        None, gt=0, lt=1, description="Average the weights with this momentum (e.g. 0.998)."
    )
    time_budget_s: float | None = Field(None, gt=0, description="Stop after this many seconds.")
    seed: int = Field(0, ge=0, description="Random seed.")


@click.command("train")
@settings_options(TrainSettings)
def train_cli(**options: object) -> None:
    """Train the Xception mask classifier (resumes when --out holds a run)."""
    from imaging.crop import CropConfig
    from serving.dataset import ensure_packed
    from serving.train import TrainConfig, train

    settings = load_settings(TrainSettings, options)
    if not settings.dataset.exists():
        click.echo(f"building {settings.dataset} from {settings.data} ...")
    ensure_packed(settings.dataset, settings.data, CropConfig(size_px=settings.input_px))
    best = train(
        TrainConfig(
            dataset=settings.dataset,
            out_dir=settings.out,
            epochs=settings.epochs,
            batch_size=settings.batch_size,
            input_px=settings.input_px,
            learning_rate=settings.learning_rate,
            decay_per_epoch=settings.decay_per_epoch,
            weights="none" if settings.weights == "none" else "imagenet",
            kaggle_per_epoch=settings.kaggle_per_epoch,
            crowd_repeat=settings.crowd_repeat,
            workers=settings.workers,
            ema_momentum=settings.ema_momentum,
            time_budget_s=settings.time_budget_s,
            seed=settings.seed,
            progress_bar=sys.stdout.isatty(),
        ),
        log=click.echo,
    )
    click.echo(f"best weights: {best}")


class ExportSettings(ServiceSettings):
    """Export options (env prefix MASKWATCH_EXPORT_)."""

    model_config = SettingsConfigDict(env_prefix="MASKWATCH_EXPORT_")

    weights: Path = Field(
        SHIPPED_WEIGHTS, description="Compact weights folder to export (default: the shipped)."
    )
    model_base: Path = Field(Path("var/models"), description="TF Serving model base folder.")
    model_name: str = Field(
        MODEL_NAME, pattern=r"^[A-Za-z0-9_.-]+$", description="Model name (subfolder)."
    )
    version: int | None = Field(
        None, ge=1, le=2**62, description="Version number; default: one above the highest."
    )
    input_px: int = Field(128, ge=32, le=512, description="Classifier input side in pixels.")
    if_changed: bool = Field(
        False,
        description="Export only when the newest version came from other weights (stack start).",
    )
    openvino: bool = Field(
        True, description="Also write OpenVINO IR (fp32, int8) and gate it on held-out accuracy."
    )
    data: Path = Field(
        Path("../shared/data"), description="Folder with crowd/: int8 calibration and the gate."
    )
    calibration_crops: int = Field(
        300, ge=1, le=100_000, description="TRAIN-split crowd crops that calibrate int8."
    )
    max_f1_delta: float = Field(
        0.005, ge=0, le=1, description="Largest held-out crowd macro-F1 change allowed vs fp32."
    )
    threads: int | None = Field(None, ge=1, le=256, description="Threads per model call.")


@click.command("export")
@settings_options(ExportSettings)
def export_cli(**options: object) -> None:
    """Export compact classifier weights as a SavedModel version, with OpenVINO IR variants
    gated on held-out crowd macro-F1 (fails, publishing nothing, when one moves too far)."""
    from serving.export import export_weights, provenance, weights_source
    from serving.export_openvino import AccuracyGateError
    from serving.runtimes import recorded_variants

    settings = load_settings(ExportSettings, options)
    model_dir = settings.model_base / settings.model_name
    try:
        source = weights_source(settings.weights, settings.input_px, settings.openvino)
    except FileNotFoundError as error:
        raise click.ClickException(str(error)) from None
    if settings.if_changed and provenance(model_dir) == source:
        click.echo(f"{model_dir}: newest version already holds these weights; nothing to do")
        return
    try:
        path = export_weights(
            settings.weights,
            settings.model_base,
            settings.model_name,
            settings.version,
            settings.input_px,
            _openvino_inputs(settings) if settings.openvino else None,
        )
    except AccuracyGateError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"exported {path}")
    if settings.openvino:
        for name, scores in recorded_variants(path).items():
            click.echo(
                f"  {name:<14} crowd macro-F1 {scores['macro_f1']:.4f} "
                f"(Δ {scores['macro_f1_delta']:+.4f})  {scores['ms_per_crop']:.2f} ms/crop, "
                f"{scores['cpu_ms_per_crop']:.2f} CPU-ms/crop"
            )


def _openvino_inputs(settings: ExportSettings) -> OpenVinoExport:
    """Crowd crops of the TRAIN split (calibration) and of the test split (the gate), RGB."""
    import numpy as np

    from imaging.crop import CropConfig
    from serving.dataset import SPLITS, crowd_faces
    from serving.export_openvino import OpenVinoExport

    crops_bgr, labels, splits = crowd_faces(settings.data, CropConfig(size_px=settings.input_px))
    if len(crops_bgr) == 0:
        raise click.ClickException(f"no crowd faces under {settings.data / 'crowd'}")
    train = np.flatnonzero(splits == SPLITS.index("train"))
    chosen = np.random.default_rng(0).permutation(train)[: settings.calibration_crops]
    test = splits == SPLITS.index("test")
    return OpenVinoExport(
        calibration_rgb=np.ascontiguousarray(crops_bgr[np.sort(chosen)][..., ::-1]),
        held_out_rgb=np.ascontiguousarray(crops_bgr[test][..., ::-1]),
        held_out_labels=labels[test],
        max_f1_delta=settings.max_f1_delta,
        threads=settings.threads,
    )
