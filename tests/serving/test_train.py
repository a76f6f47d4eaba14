"""Training plumbing: epoch plans, weight shards, and a short real training run (resumable)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from serving.train import TrainConfig, epoch_indices, to_rgb_batch


def test_epoch_plan_subsamples_kaggle_and_balances_crowd() -> None:
    # sources: 0 web, 1 kaggle, 2 crowd; labels: 0 with_mask, 1 without_mask
    sources = np.array([0] * 10 + [1] * 100 + [2] * 20, np.int8)
    labels = np.array([0] * 5 + [1] * 5 + [0] * 50 + [1] * 50 + [0] * 16 + [1] * 4, np.int8)
    config = TrainConfig(dataset=Path("x"), out_dir=Path("y"), kaggle_per_epoch=30, crowd_repeat=2)
    plan = epoch_indices(labels, sources, config, np.random.default_rng(0))
    assert int((sources[plan] == 1).sum()) == 30
    crowd = plan[sources[plan] == 2]
    # crowd repeated twice, then unmasked faces added until both classes weigh the same
    assert int((labels[crowd] == 0).sum()) == 32
    assert int((labels[crowd] == 1).sum()) == 32


def test_rgb_conversion_is_a_copy_in_the_other_order() -> None:
    bgr = np.zeros((1, 2, 2, 3), np.uint8)
    bgr[..., 0] = 255
    rgb = to_rgb_batch(bgr)
    assert rgb[0, 0, 0].tolist() == [0, 0, 255]
    assert bgr[0, 0, 0].tolist() == [255, 0, 0]


def test_weights_round_trip_through_compact_shards(tmp_path: Path) -> None:
    import keras

    from serving.weights import load_compact, save_compact

    def model() -> keras.Model:
        inputs = keras.Input((4,))
        x = keras.layers.Dense(8)(inputs)
        x = keras.layers.BatchNormalization()(x)
        return keras.Model(inputs, keras.layers.Dense(2)(x))

    source, target = model(), model()
    files = save_compact(source, tmp_path, max_shard_mb=0.0001)
    assert len(files) > 2  # several shards plus the manifest
    load_compact(target, tmp_path)
    for a, b in zip(source.weights, target.weights, strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-3, atol=1e-3)


def test_a_short_training_run_writes_weights_and_resumes(tmp_path: Path) -> None:
    """Two epochs of the real Xception at its smallest input on 24 synthetic crops; a second
    call with the same folder resumes at epoch 2 instead of starting over."""
    from serving.train import train

    rng = np.random.default_rng(0)
    size = 72
    crops = rng.integers(0, 255, (24, size, size, 3), dtype=np.uint8)
    import cv2

    encoded = [cv2.imencode(".jpg", c)[1] for c in crops]
    dataset = tmp_path / "data.npz"
    np.savez(
        dataset,
        jpeg=np.concatenate(encoded).ravel(),
        offsets=np.cumsum([0] + [len(e) for e in encoded]),
        label=np.array([0, 1] * 12, np.int8),
        source=np.array([0, 1, 2] * 8, np.int8),
        split=np.array([0] * 16 + [1] * 8, np.int8),
        group=np.arange(24),
        size_px=np.array(size),
    )
    out = tmp_path / "run"
    lines: list[str] = []
    config = TrainConfig(
        dataset=dataset,
        out_dir=out,
        epochs=1,
        batch_size=8,
        input_px=size,
        weights="none",
        kaggle_per_epoch=8,
        crowd_repeat=1,
        workers=1,
    )
    train(config, log=lines.append)
    assert (out / "best" / "weights.json").exists()
    assert json.loads(lines[0])["epoch"] == 1
    lines.clear()
    train(TrainConfig(**{**config.__dict__, "epochs": 2}), log=lines.append)
    epochs = [json.loads(line)["epoch"] for line in lines if line.startswith('{"epoch"')]
    assert epochs == [2]
