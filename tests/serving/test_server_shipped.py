"""The shipped classifier end to end: `maskwatch export` → `maskwatch serve` → client.

Known crops from ../shared (web pictures of each class, fitted to the input square the
way training fits them) must mostly come back with their class. This is a wiring check of
the shipped weights (channel order, normalisation, class order), not the F1 evaluation.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from imaging.crop import fit_to_square
from schemas.model_server import CLASSES
from serving.cli import export_cli
from serving.shipped import SHIPPED_WEIGHTS
from workers.detector.classifier import ClientConfig, GrpcClassifier

WEIGHTS = SHIPPED_WEIGHTS
PER_CLASS = 6


def known_crops(shared_dir: Path, label: str, size_px: int) -> np.ndarray:
    folder = shared_dir / "data" / "crops" / "web" / label
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
    crops = []
    for path in paths[: PER_CLASS * 2]:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is not None:
            crops.append(
                fit_to_square(np.asarray(image, np.uint8), size_px)[..., ::-1]
            )  # BGR → RGB
    assert len(crops) >= PER_CLASS, f"too few readable pictures in {folder}"
    return np.ascontiguousarray(np.stack(crops[:PER_CLASS]))


def test_shipped_model_exports_serves_and_classifies_known_crops(
    tmp_path: Path, shared_dir: Path, tiny: Any
) -> None:
    if not (WEIGHTS / "weights.json").is_file():
        message = f"shipped weights not found in {WEIGHTS}"
        if os.environ.get("CI", "").lower() in {"true", "1"}:
            pytest.fail(f"{message} (CI=true: they must be committed)", pytrace=False)
        pytest.skip(message)
    result = CliRunner().invoke(
        export_cli, ["--weights", str(WEIGHTS), "--model-base", str(tmp_path), "--no-openvino"]
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "mask_classifier" / "1" / "saved_model.pb").is_file()

    with tiny.serve(tmp_path, model_name="mask_classifier") as server:
        config = ClientConfig(target=f"127.0.0.1:{server.port}", deadline_s=120.0)
        with GrpcClassifier(config) as client:
            assert client.ready()
            for label_index, label in enumerate(CLASSES):
                crops = known_crops(shared_dir, label, 128)
                probabilities = client.classify(crops)
                assert probabilities.shape == (len(crops), 2)
                np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-4)
                correct = int((probabilities.argmax(axis=1) == label_index).sum())
                assert correct > len(crops) / 2, f"{label}: {correct}/{len(crops)} correct"
            assert client.model_version == 1
