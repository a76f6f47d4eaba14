"""Train the mask classifier (`maskwatch train`).

Resumable: Keras' BackupAndRestore keeps the model, optimizer and epoch counter in
`<out>/backup`, so an interrupted run continues where it stopped when started again with the
same output directory, also in a later session. After every epoch the weights are written as
compact shards to `<out>/last`, and to `<out>/best` when the validation crowd macro-F1
(the faces cameras actually see) improved.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import keras
import numpy as np
import numpy.typing as npt

from serving.augment import AugmentConfig, augment
from serving.dataset import SOURCES, SPLITS, decode_all, load
from serving.metrics import classification_report
from serving.model import Weights, build_classifier
from serving.weights import load_compact, save_compact


@dataclass(frozen=True)
class TrainConfig:
    """Settings of one training run (the CLI's `train` options)."""

    dataset: Path
    out_dir: Path
    epochs: int = 30
    batch_size: int = 32
    input_px: int = 128
    learning_rate: float = 1e-4
    decay_per_epoch: float = 1e-4
    weights: Weights = "imagenet"
    kaggle_per_epoch: int = 3000
    """Kaggle-12k is large and easy: draw this many of its crops per epoch."""
    crowd_repeat: int = 3
    """Crowd faces are what cameras see: each appears this many times per epoch."""
    balance_crowd: bool = True
    """Repeat crowd faces without a mask until both crowd classes weigh the same."""
    seed: int = 0
    workers: int = 4
    progress_bar: bool = False
    """A live progress bar per epoch (for a terminal); otherwise one line per epoch (for logs)."""
    ema_momentum: float | None = None
    """Keep an exponential moving average of the weights (validated and saved instead of the
    raw weights): from-scratch training is noisy from epoch to epoch, the average is not."""
    time_budget_s: float | None = None
    """Stop after the epoch during which this many seconds of training have passed."""
    init_weights: Path | None = None
    """Start from compact weights (a previous run's `best`) instead of `weights`."""
    augment: AugmentConfig = field(default_factory=AugmentConfig)


def to_rgb_batch(images_bgr: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """BGR (OpenCV) → RGB (the classifier's input order), as a new array."""
    return np.ascontiguousarray(images_bgr[..., ::-1])


def epoch_indices(
    labels: npt.NDArray[np.int8],
    sources: npt.NDArray[np.int8],
    config: TrainConfig,
    rng: np.random.Generator,
) -> npt.NDArray[np.int64]:
    """Indices of one epoch: Kaggle subsampled, crowd repeated and class-balanced, shuffled."""
    web = np.flatnonzero(sources == SOURCES.index("web"))
    kaggle = np.flatnonzero(sources == SOURCES.index("kaggle"))
    crowd = np.flatnonzero(sources == SOURCES.index("crowd"))
    kaggle = rng.choice(kaggle, size=min(config.kaggle_per_epoch, len(kaggle)), replace=False)
    parts = [web, kaggle, np.tile(crowd, config.crowd_repeat)]
    unmasked = crowd[labels[crowd] == 1]
    if config.balance_crowd and len(unmasked):
        extra = (len(crowd) - 2 * len(unmasked)) * config.crowd_repeat
        if extra > 0:
            parts.append(rng.choice(unmasked, size=extra, replace=True))
    indices = np.concatenate(parts).astype(np.int64)
    rng.shuffle(indices)
    return indices


class AugmentedBatches(keras.utils.PyDataset):  # type: ignore[misc]
    """Augmented RGB batches drawn from a fresh epoch plan every epoch."""

    def __init__(
        self,
        images: npt.NDArray[np.uint8],
        labels: npt.NDArray[np.int8],
        sources: npt.NDArray[np.int8],
        config: TrainConfig,
    ) -> None:
        super().__init__(workers=config.workers, use_multiprocessing=False)
        self.images, self.labels, self.sources, self.config = images, labels, sources, config
        self.epoch = 0
        self.plan = epoch_indices(labels, sources, config, np.random.default_rng(config.seed))

    def __len__(self) -> int:
        return len(self.plan) // self.config.batch_size

    def __getitem__(self, index: int) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int32]]:
        rng = np.random.default_rng((self.config.seed, self.epoch, index))
        chosen = self.plan[index * self.config.batch_size : (index + 1) * self.config.batch_size]
        batch = np.stack([augment(self.images[i], rng, self.config.augment) for i in chosen])
        return to_rgb_batch(batch), self.labels[chosen].astype(np.int32)

    def on_epoch_end(self) -> None:
        self.epoch += 1
        rng = np.random.default_rng((self.config.seed, self.epoch))
        self.plan = epoch_indices(self.labels, self.sources, self.config, rng)


class TimeBudget(keras.callbacks.Callback):  # type: ignore[misc]
    """Ends training after the epoch in which the budget ran out (fits runs into sessions)."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.deadline = time.monotonic() + seconds

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        if time.monotonic() > self.deadline:
            self.model.stop_training = True


class ValidationF1(keras.callbacks.Callback):  # type: ignore[misc]
    """Per-source macro-F1 on the validation split after each epoch; keeps the best weights."""

    def __init__(
        self,
        images: npt.NDArray[np.uint8],
        labels: npt.NDArray[np.int8],
        sources: npt.NDArray[np.int8],
        out_dir: Path,
        log: Callable[[str], None],
    ) -> None:
        super().__init__()
        self.images, self.labels, self.sources = to_rgb_batch(images), labels, sources
        self.out_dir, self.log = out_dir, log
        state = out_dir / "best" / "score.json"
        self.best = json.loads(state.read_text())["val_crowd_f1"] if state.exists() else -1.0

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        probabilities = self.model.predict(self.images, batch_size=256, verbose=0)
        predicted = probabilities.argmax(axis=1)
        scores = {}
        for name, mask in (
            ("crowd", self.sources == SOURCES.index("crowd")),
            ("crops", self.sources != SOURCES.index("crowd")),
        ):
            report = classification_report(self.labels[mask], predicted[mask])
            scores[f"val_{name}_f1"] = report["macro_f1"]
        if logs is not None:
            logs.update(scores)
        save_compact(self.model, self.out_dir / "last")
        improved = scores["val_crowd_f1"] > self.best
        if improved:
            self.best = scores["val_crowd_f1"]
            save_compact(self.model, self.out_dir / "best")
            (self.out_dir / "best" / "score.json").write_text(
                json.dumps({"epoch": epoch + 1, **scores})
            )
        self.log(json.dumps({"epoch": epoch + 1, **(logs or {}), "best": improved}))


def train(config: TrainConfig, log: Callable[[str], None] = print) -> Path:
    """Run (or resume) training; returns the directory of the best weights."""
    config.out_dir.mkdir(parents=True, exist_ok=True)
    arrays = load(config.dataset)
    images = decode_all(arrays)
    if images.shape[1] != config.input_px:
        images = np.stack([cv2.resize(im, (config.input_px, config.input_px)) for im in images])
    labels, sources, split = arrays["label"], arrays["source"], arrays["split"]
    train_mask = split == SPLITS.index("train")
    val_mask = split == SPLITS.index("val")
    batches = AugmentedBatches(images[train_mask], labels[train_mask], sources[train_mask], config)
    model = build_classifier(config.input_px, "none" if config.init_weights else config.weights)
    if config.init_weights:
        load_compact(model, config.init_weights)
    schedule = keras.optimizers.schedules.InverseTimeDecay(
        config.learning_rate, decay_steps=len(batches), decay_rate=config.decay_per_epoch
    )
    model.compile(
        optimizer=keras.optimizers.Adam(
            schedule,
            use_ema=config.ema_momentum is not None,
            ema_momentum=config.ema_momentum or 0.99,
        ),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(config).items()}
    (config.out_dir / "config.json").write_text(json.dumps(settings, indent=1, default=str))
    started = time.monotonic()
    # Order matters at epoch end: the backup keeps the raw weights, then the averaged weights
    # are swapped in for validation and for the saved weight files.
    callbacks: list[keras.callbacks.Callback] = [
        keras.callbacks.BackupAndRestore(str(config.out_dir / "backup"), delete_checkpoint=False)
    ]
    if config.ema_momentum is not None:
        callbacks.append(keras.callbacks.SwapEMAWeights(swap_on_epoch=True))
    callbacks.append(
        ValidationF1(images[val_mask], labels[val_mask], sources[val_mask], config.out_dir, log)
    )
    if config.time_budget_s:
        callbacks.append(TimeBudget(config.time_budget_s))
    model.fit(
        batches,
        epochs=config.epochs,
        callbacks=callbacks,
        verbose=1 if config.progress_bar else 2,
    )
    log(json.dumps({"train_seconds": round(time.monotonic() - started, 1)}))
    return config.out_dir / "best"
