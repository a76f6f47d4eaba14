"""Every runtime the model server offers, on a tiny model: TensorFlow and OpenVINO
fp32 / bf16 / int8, exported with `maskwatch export`'s OpenVINO step and served over gRPC
to the TensorFlow-free client; the accuracy gate; `auto` choosing the fastest variant."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest

from serving.export import export_model, versions
from serving.export_openvino import AccuracyGateError, OpenVinoExport, gate_failures
from serving.runtimes import (
    RUNTIMES,
    VARIANTS_RECORD,
    fastest_variant,
    recorded_variants,
    supported_runtimes,
)
from workers.detector.classifier import ClientConfig, GrpcClassifier

TOLERANCE = {
    "tensorflow": 1e-6,
    "openvino-fp32": 1e-5,
    "openvino-bf16": 2e-2,
    "openvino-int8": 5e-2,
}
"""Largest |Δp| from Keras in-process (bf16 is exact on CPUs without bf16 instructions)."""


def spec_for(tiny: Any, model: keras.Model, max_f1_delta: float = 0.005) -> OpenVinoExport:
    """Held-out crops labelled with the fp32 model's own answers, kept away from its decision
    boundary: a random tiny model has crops at p ≈ 0.5 that int8 rounding flips (the gate then
    fails the export, rightly)."""
    candidates = tiny.crops(256, seed=9)
    probabilities = np.asarray(tiny.expected(model, candidates))
    clear = np.abs(probabilities[:, 0] - 0.5) > 0.1
    return OpenVinoExport(
        calibration_rgb=tiny.crops(48, seed=8),
        held_out_rgb=candidates[clear],
        held_out_labels=probabilities[clear].argmax(axis=1).astype(np.int8),
        max_f1_delta=max_f1_delta,
    )


@pytest.fixture(scope="module")
def openvino_base(
    tmp_path_factory: pytest.TempPathFactory, tiny: Any, tiny_model: keras.Model
) -> Path:
    base = tmp_path_factory.mktemp("openvino-models")
    export_model(tiny_model, base, tiny.name, 1, openvino=spec_for(tiny, tiny_model))
    return base


def test_export_writes_every_variant_with_its_measured_accuracy(
    openvino_base: Path, tiny: Any
) -> None:
    version = openvino_base / tiny.name / "1"
    assert (version / "saved_model.pb").is_file()
    assert (version / "openvino/fp32/model.xml").is_file()
    assert (version / "openvino/int8/model.xml").is_file()
    variants = recorded_variants(version)
    assert sorted(variants) == sorted(supported_runtimes())
    assert {"tensorflow", "openvino-fp32", "openvino-int8"} <= set(variants)
    assert variants["tensorflow"]["macro_f1"] == 1.0  # labels are the fp32 model's answers
    for scores in variants.values():
        assert abs(scores["macro_f1_delta"]) <= 0.005
        assert scores["ms_per_crop"] > 0 and scores["cpu_ms_per_crop"] > 0


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_each_runtime_serves_the_model_over_grpc(
    openvino_base: Path, tiny: Any, tiny_model: keras.Model, runtime: str
) -> None:
    crops = tiny.crops(11, seed=3)
    with (
        tiny.serve(openvino_base, inference_runtime=runtime, inference_threads=1) as server,
        GrpcClassifier(
            ClientConfig(target=f"127.0.0.1:{server.port}", model_name=tiny.name)
        ) as client,
    ):
        assert server.watcher.current is not None
        assert server.watcher.current.runtime.name == runtime
        probabilities = client.classify(crops)
        assert client.model_version == 1
    np.testing.assert_allclose(
        probabilities, tiny.expected(tiny_model, crops), atol=TOLERANCE[runtime]
    )


def test_auto_serves_the_fastest_recorded_variant(openvino_base: Path, tiny: Any) -> None:
    version = openvino_base / tiny.name / "1"
    expected = min(recorded_variants(version).items(), key=lambda kv: kv[1]["cpu_ms_per_crop"])[0]
    with tiny.serve(openvino_base, inference_runtime="auto") as server:
        assert server.watcher.current is not None
        assert server.watcher.current.runtime.name == expected


def test_fastest_variant_reads_the_record_and_falls_back_to_tensorflow(tmp_path: Path) -> None:
    assert fastest_variant(tmp_path) == "tensorflow"
    (tmp_path / VARIANTS_RECORD).parent.mkdir(parents=True)
    times = {"tensorflow": 19.0, "openvino-fp32": 30.0, "openvino-int8": 10.0}
    record = {"variants": {name: {"cpu_ms_per_crop": ms} for name, ms in times.items()}}
    (tmp_path / VARIANTS_RECORD).write_text(json.dumps(record))
    assert fastest_variant(tmp_path) == "openvino-int8"


def test_gate_lists_every_variant_outside_the_tolerance() -> None:
    variants = {
        "tensorflow": {"macro_f1_delta": 0.0},
        "openvino-bf16": {"macro_f1_delta": -0.005},
        "openvino-int8": {"macro_f1_delta": -0.0061},
        "openvino-fp32": {"macro_f1_delta": 0.0072},
    }
    assert gate_failures(variants, 0.005) == {"openvino-int8": -0.0061, "openvino-fp32": 0.0072}


def test_a_failed_gate_publishes_no_version(
    tmp_path: Path, tiny: Any, tiny_model: keras.Model
) -> None:
    impossible = spec_for(tiny, tiny_model, max_f1_delta=-1.0)  # no variant can be within it
    with pytest.raises(AccuracyGateError, match="macro-F1 moved more than"):
        export_model(tiny_model, tmp_path, tiny.name, 1, openvino=impossible)
    assert versions(tmp_path / tiny.name) == []
    assert list((tmp_path / tiny.name).iterdir()) == []
