"""OpenVINO IR beside an exported SavedModel, with an accuracy gate on every variant.

`openvino.convert_model` reads the SavedModel's serving signature directly; the fp32 IR is
saved uncompressed, the int8 IR comes from NNCF post-training quantization calibrated on
crowd crops of the TRAIN split only. Then every runtime variant (TensorFlow, OpenVINO fp32,
bf16, int8) classifies the held-out crowd crops: a variant whose macro-F1 differs from
TensorFlow fp32's by more than `max_f1_delta` fails the export (nothing is published), and
the measured macro-F1 and ms/crop of each variant go to `openvino/variants.json`, which the
server's `auto` runtime reads to serve the fastest one. bf16 is measured (and so eligible
for `auto`) only on CPUs with bf16 instructions.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from schemas.model_server import INPUT, OUTPUT, SIGNATURE
from serving.metrics import classification_report
from serving.runtimes import (
    OPENVINO_DIR,
    RUNTIMES,
    VARIANTS_RECORD,
    RuntimeConfig,
    RuntimeName,
    load_runtime,
    supported_runtimes,
)

REFERENCE: RuntimeName = "tensorflow"
BATCH = 32
"""Crops per call when scoring and timing a variant (the server's default batch limit)."""


class AccuracyGateError(RuntimeError):
    """A runtime variant's held-out macro-F1 moved more than allowed from fp32's."""


@dataclass(frozen=True)
class OpenVinoExport:
    """What the OpenVINO step needs: crowd crops (RGB uint8) and the gate."""

    calibration_rgb: npt.NDArray[np.uint8]
    """TRAIN-split crops: NNCF's activation statistics come from these only."""
    held_out_rgb: npt.NDArray[np.uint8]
    held_out_labels: npt.NDArray[np.int8]
    max_f1_delta: float = 0.005
    threads: int | None = None


def write_openvino(version_dir: Path, spec: OpenVinoExport) -> dict[str, Any]:
    """Write the IR variants into `version_dir`, score them, gate them; returns the record."""
    import nncf
    import openvino as ov

    model = ov.convert_model(str(version_dir))
    fp32 = version_dir / OPENVINO_DIR / "fp32" / "model.xml"
    ov.save_model(model, str(fp32), compress_to_fp16=False)
    calibration = nncf.Dataset([crop[None] for crop in spec.calibration_rgb])
    quantized = nncf.quantize(
        model,
        calibration,
        subset_size=len(spec.calibration_rgb),
        preset=nncf.QuantizationPreset.MIXED,
    )
    ov.save_model(quantized, str(version_dir / OPENVINO_DIR / "int8" / "model.xml"))
    measured = supported_runtimes()
    scored = {name: score_variant(version_dir, name, spec) for name in measured}
    reference_scores, reference_probabilities = scored[REFERENCE]
    variants: dict[str, dict[str, float]] = {
        name: {
            **scores,
            "macro_f1_delta": scores["macro_f1"] - reference_scores["macro_f1"],
            "max_abs_probability_delta": float(
                np.abs(probabilities - reference_probabilities).max(initial=0.0)
            ),
        }
        for name, (scores, probabilities) in scored.items()
    }
    record = {
        "held_out_crops": len(spec.held_out_rgb),
        "calibration_crops": len(spec.calibration_rgb),
        "max_f1_delta": spec.max_f1_delta,
        "variants": variants,
        "not_measured": sorted(set(RUNTIMES) - set(measured)),
    }
    (version_dir / VARIANTS_RECORD).write_text(json.dumps(record, indent=1, sort_keys=True))
    failed = gate_failures(variants, spec.max_f1_delta)
    if failed:
        raise AccuracyGateError(
            "held-out crowd macro-F1 moved more than "
            f"{spec.max_f1_delta} from {REFERENCE} fp32: {failed}"
        )
    return record


def gate_failures(
    variants: Mapping[str, Mapping[str, float]], max_f1_delta: float
) -> dict[str, float]:
    """Variant → macro-F1 delta, for every variant outside ±`max_f1_delta`."""
    return {
        name: round(float(scores["macro_f1_delta"]), 4)
        for name, scores in variants.items()
        if abs(scores["macro_f1_delta"]) > max_f1_delta
    }


def score_variant(
    version_dir: Path, name: RuntimeName, spec: OpenVinoExport
) -> tuple[dict[str, float], npt.NDArray[np.float32]]:
    """Held-out macro-F1, wall ms/crop and CPU-ms/crop (the whole process, every thread:
    robust to a busy machine, and what a node pays) in batches of BATCH after one warm-up
    batch, and the probabilities themselves."""
    runtime = load_runtime(version_dir, RuntimeConfig(name, spec.threads))
    crops = spec.held_out_rgb
    runtime.run(SIGNATURE, {INPUT: crops[:BATCH]})
    started, cpu_started = time.perf_counter(), time.process_time()
    parts = [
        runtime.run(SIGNATURE, {INPUT: crops[i : i + BATCH]})[OUTPUT]
        for i in range(0, len(crops), BATCH)
    ]
    elapsed_s = time.perf_counter() - started
    cpu_s = time.process_time() - cpu_started
    probabilities = np.concatenate(parts).astype(np.float32)
    report = classification_report(spec.held_out_labels, probabilities.argmax(axis=1))
    scores = {
        "macro_f1": float(report["macro_f1"]),
        "ms_per_crop": round(1000 * elapsed_s / max(len(crops), 1), 3),
        "cpu_ms_per_crop": round(1000 * cpu_s / max(len(crops), 1), 3),
    }
    return scores, probabilities
