"""Export: TF Serving layout, immutable versions, the serving signature, deploy configs."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import cv2
import keras
import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner
from google.protobuf import text_format  # type: ignore[import-untyped]
from tensorflow_serving.apis import prediction_log_pb2
from tensorflow_serving.config import model_server_config_pb2

from schemas.model_server import INPUT, OUTPUT, SIGNATURE
from schemas.model_server.tensors import from_tensor_proto
from serving.cli import export_cli
from serving.export import (
    export_model,
    next_version,
    provenance,
    versions,
    weights_source,
)
from serving.server import ServeSettings
from serving.weights import save_compact

REPO = Path(__file__).resolve().parents[2]


def test_versions_count_up_and_are_immutable(tmp_path: Path, tiny_model: keras.Model) -> None:
    assert next_version(tmp_path / "m") == 1
    first = export_model(tiny_model, tmp_path, "m")
    second = export_model(tiny_model, tmp_path, "m")
    assert (first.name, second.name) == ("1", "2")
    assert versions(tmp_path / "m") == [1, 2]
    with pytest.raises(FileExistsError):
        export_model(tiny_model, tmp_path, "m", version=2)
    assert export_model(tiny_model, tmp_path, "m", version=10).name == "10"
    assert next_version(tmp_path / "m") == 11
    # Nothing half-written is left where a server could see it.
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["1", "10", "2"]


def test_signature_takes_uint8_crops_and_returns_probabilities(
    tmp_path: Path, tiny_model: keras.Model, tiny: Any
) -> None:
    path = export_model(tiny_model, tmp_path, "m")
    loaded = tf.saved_model.load(str(path))
    signature = loaded.signatures[SIGNATURE]
    _, inputs = signature.structured_input_signature
    assert list(inputs) == [INPUT]
    assert inputs[INPUT].dtype == tf.uint8
    assert inputs[INPUT].shape.as_list() == [None, tiny.px, tiny.px, 3]
    outputs = signature.structured_outputs
    assert list(outputs) == [OUTPUT]
    assert outputs[OUTPUT].dtype == tf.float32
    assert outputs[OUTPUT].shape.as_list() == [None, 2]
    crops = tiny.crops(5)
    got = signature(crops=tf.constant(crops))[OUTPUT].numpy()
    np.testing.assert_allclose(got, tiny.expected(tiny_model, crops), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got.sum(axis=1), 1.0, rtol=1e-5)


def test_export_cli_if_changed_skips_weights_already_exported(
    tmp_path: Path, tiny_model: keras.Model, tiny: Any
) -> None:
    weights = tmp_path / "weights"
    save_compact(tiny_model, weights)
    source = weights_source(weights, 128)
    export_model(tiny_model, tmp_path / "base", "mask_classifier", 3, source)
    assert provenance(tmp_path / "base" / "mask_classifier") == source
    args = [
        "--weights",
        str(weights),
        "--model-base",
        str(tmp_path / "base"),
        "--if-changed",
        "--no-openvino",
    ]
    result = CliRunner().invoke(export_cli, args)
    assert result.exit_code == 0, result.output
    assert "nothing to do" in result.output
    assert versions(tmp_path / "base" / "mask_classifier") == [3]
    # Other weights (or another input size) are another source: --if-changed would export.
    save_compact(tiny.build(seed=1), tmp_path / "other")
    assert weights_source(tmp_path / "other", 128) != source
    assert weights_source(weights, 160) != source


def test_export_cli_says_which_weights_are_missing(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        export_cli, ["--weights", str(tmp_path / "none"), "--model-base", str(tmp_path)]
    )
    assert result.exit_code != 0
    assert "no classifier weights at" in result.output
    assert not (tmp_path / "mask_classifier").exists()


def test_version_carries_a_tf_serving_warmup_request(
    tmp_path: Path, tiny_model: keras.Model, tiny: Any
) -> None:
    path = export_model(tiny_model, tmp_path, "m")
    records = list(tf.data.TFRecordDataset(str(path / "assets.extra/tf_serving_warmup_requests")))
    assert len(records) == 1
    log = prediction_log_pb2.PredictionLog.FromString(records[0].numpy())
    request = log.predict_log.request
    assert request.model_spec.signature_name == SIGNATURE
    crops = from_tensor_proto(request.inputs[INPUT])
    assert crops.dtype == np.dtype(np.uint8)
    assert crops.shape == (1, tiny.px, tiny.px, 3)


def test_export_cli_rejects_a_bad_version(tmp_path: Path) -> None:
    result = CliRunner().invoke(export_cli, ["--model-base", str(tmp_path), "--version", "0"])
    assert result.exit_code != 0
    assert "MASKWATCH_EXPORT_VERSION" in result.output


def test_tfserving_model_config_parses_and_names_the_model() -> None:
    text = (REPO / "deploy/tfserving/models.config").read_text()
    config = text_format.Parse(text, model_server_config_pb2.ModelServerConfig())
    (model,) = config.model_config_list.config
    assert model.name == "mask_classifier"
    assert model.base_path.endswith("/mask_classifier")
    assert model.model_platform == "tensorflow"
    assert model.model_version_policy.latest.num_versions == 1


def test_tfserving_batching_matches_the_local_server_defaults() -> None:
    """Production (TF Serving) and CI (`maskwatch serve`) batch with the same limits."""
    text = (REPO / "deploy/tfserving/batching_parameters.txt").read_text()
    values = {
        k: int(v)
        for k, v in re.findall(r"^(\w+)\s*\{\s*value:\s*(\w+)\s*\}", text, re.M)
        if v.isdigit()
    }
    defaults = ServeSettings()
    assert values["max_batch_size"] == defaults.max_batch_size
    assert values["batch_timeout_micros"] == round(defaults.batch_timeout_ms * 1000)
    assert values["max_enqueued_batches"] >= 1


def test_openvino_calibrates_on_train_crowd_faces_and_gates_on_test_ones(tmp_path: Path) -> None:
    """Each photo's faces get one colour; the colours tell which split a crop came from."""
    from serving.cli import ExportSettings, _openvino_inputs
    from serving.dataset import crowd_photo_split

    (tmp_path / "crowd" / "images").mkdir(parents=True)
    (tmp_path / "crowd" / "annotations").mkdir(parents=True)
    voc = (
        "<annotation><object><name>with_mask</name><bndbox><xmin>20</xmin><ymin>20</ymin>"
        "<xmax>44</xmax><ymax>44</ymax></bndbox></object></annotation>"
    )
    split_of_shade = {}
    for index in range(40):
        name = f"p{index}"
        shade = 5 * index + 10
        cv2.imwrite(
            str(tmp_path / "crowd/images" / f"{name}.jpg"), np.full((64, 64, 3), shade, np.uint8)
        )
        (tmp_path / "crowd/annotations" / f"{name}.xml").write_text(voc)
        split_of_shade[shade] = crowd_photo_split(f"{name}.jpg")
    assert {"train", "test"} <= set(split_of_shade.values())
    settings = ExportSettings(data=tmp_path, input_px=32, calibration_crops=5)
    spec = _openvino_inputs(settings)

    def splits(crops: np.ndarray) -> set[str]:
        shades = [int(round(float(c.mean()) / 5) * 5) for c in crops]
        return {split_of_shade[s] for s in shades}

    assert len(spec.calibration_rgb) == 5
    assert splits(spec.calibration_rgb) == {"train"}
    assert splits(spec.held_out_rgb) == {"test"}
    assert len(spec.held_out_rgb) == sum(s == "test" for s in split_of_shade.values())
    assert spec.held_out_labels.tolist() == [0] * len(spec.held_out_rgb)
