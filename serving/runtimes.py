"""Inference runtimes of a servable: TensorFlow SavedModel, or OpenVINO IR in fp32/bf16/int8.

A version folder always holds the SavedModel (the signatures, what TF Serving loads); `maskwatch
export` adds OpenVINO IR beside it (`openvino/fp32/model.xml`, `openvino/int8/model.xml`) and a
record of every variant's held-out accuracy and speed (`openvino/variants.json`). bf16 is the
fp32 IR compiled with bf16 inference precision (fast only on CPUs with bf16 instructions). The
model server picks a runtime by name; `auto` takes the fastest variant the export measured
(every recorded variant passed export's accuracy gate).

Every runtime answers the same `run(key, inputs) -> outputs` with the SavedModel's tensor names,
so batching, validation and the gRPC layer above it do not change.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

from schemas.model_server import SIGNATURE
from serving.batching import Arrays

RuntimeName = Literal["tensorflow", "openvino-fp32", "openvino-bf16", "openvino-int8"]
RUNTIMES: tuple[RuntimeName, ...] = (
    "tensorflow",
    "openvino-fp32",
    "openvino-bf16",
    "openvino-int8",
)
OPENVINO_DIR = "openvino"
VARIANTS_RECORD = f"{OPENVINO_DIR}/variants.json"
IR_OF: dict[RuntimeName, str] = {
    "openvino-fp32": "fp32",
    "openvino-bf16": "fp32",
    "openvino-int8": "int8",
}
"""Which IR folder a variant compiles (bf16 is an inference precision, not a file)."""
PRECISION_HINT = {"openvino-fp32": "f32", "openvino-bf16": "bf16", "openvino-int8": "f32"}
"""Set explicitly: OpenVINO's CPU default on bf16-capable CPUs is bf16, and "fp32" must mean
fp32 (int8 layers run int8 either way; its remaining float layers stay fp32)."""


@dataclass(frozen=True)
class RuntimeConfig:
    """Which runtime a servable uses and how many threads one model call may take."""

    name: RuntimeName | Literal["auto"] = "tensorflow"
    threads: int | None = None
    """Intra-op threads (pin to the CPU limit in a container); None: the runtime's default."""


class Runtime(Protocol):
    """A loaded model: the signature keys it runs, and one unbatched call."""

    name: RuntimeName
    keys: frozenset[str]

    def run(self, key: str, inputs: Arrays) -> Arrays:
        """Outputs by name for inputs already validated against the signature."""
        ...


def supported_runtimes() -> tuple[RuntimeName, ...]:
    """The runtimes that are what they say on this CPU: bf16 needs bf16 instructions (without
    them OpenVINO quietly runs the bf16 variant in fp32)."""
    import openvino as ov

    capabilities = ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    return tuple(r for r in RUNTIMES if r != "openvino-bf16" or "BF16" in capabilities)


def recorded_variants(version_dir: Path) -> dict[str, dict[str, Any]]:
    """What export measured per variant (`name → {macro_f1, cpu_ms_per_crop, ...}`), or {}."""
    record = version_dir / VARIANTS_RECORD
    if not record.is_file():
        return {}
    loaded: dict[str, dict[str, Any]] = json.loads(record.read_text())["variants"]
    return loaded


def fastest_variant(version_dir: Path) -> RuntimeName:
    """The recorded variant with the fewest CPU-ms per crop (wall time on a shared machine
    says more about the neighbours); `tensorflow` when nothing was recorded."""
    variants = recorded_variants(version_dir)
    ranked = sorted(
        (v["cpu_ms_per_crop"], name) for name, v in variants.items() if name in RUNTIMES
    )
    chosen: RuntimeName = ranked[0][1] if ranked else "tensorflow"
    return chosen


def load_runtime(version_dir: Path, config: RuntimeConfig) -> Runtime:
    """Load the runtime `config` names (resolving `auto`) for one version folder."""
    name = fastest_variant(version_dir) if config.name == "auto" else config.name
    if name == "tensorflow":
        return TensorFlowRuntime(version_dir, config.threads)
    return OpenVinoRuntime(version_dir, name, config.threads)


class RuntimeInputError(ValueError):
    """The runtime refused the inputs (answered INVALID_ARGUMENT by the server)."""


class TensorFlowRuntime:
    """The SavedModel's concrete functions, called in-process."""

    name: RuntimeName = "tensorflow"

    def __init__(self, version_dir: Path, threads: int | None) -> None:
        import tensorflow as tf

        if threads is not None:
            _set_tensorflow_threads(threads)
        self._tf = tf
        loaded = tf.saved_model.load(str(version_dir))
        self._loaded = loaded  # the functions need their trackable object alive
        self._functions = {k: loaded.signatures[k] for k in loaded.signatures}
        self.keys = frozenset(self._functions)

    def run(self, key: str, inputs: Arrays) -> Arrays:
        tf = self._tf
        try:
            outputs = self._functions[key](**{k: tf.constant(v) for k, v in inputs.items()})
        except tf.errors.InvalidArgumentError as error:
            raise RuntimeInputError(error.message) from None
        return {k: np.asarray(v.numpy()) for k, v in outputs.items()}


def _set_tensorflow_threads(threads: int) -> None:
    """Intra/inter-op pools are process-wide and fixed once TF has run anything."""
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(min(threads, 2))
    except RuntimeError:
        pass  # already initialised by an earlier version in this process: keep its pools


class OpenVinoRuntime:
    """An OpenVINO IR compiled for the CPU; one infer request per calling thread."""

    def __init__(self, version_dir: Path, name: RuntimeName, threads: int | None) -> None:
        import openvino as ov

        self.name = name
        path = version_dir / OPENVINO_DIR / IR_OF[name] / "model.xml"
        if not path.is_file():
            raise FileNotFoundError(f"{path} missing: export this version with OpenVINO IR")
        properties: dict[str, Any] = {
            "INFERENCE_PRECISION_HINT": PRECISION_HINT[name],
            "PERFORMANCE_HINT": "LATENCY",
        }
        if threads is not None:
            properties["INFERENCE_NUM_THREADS"] = threads
        self._compiled = ov.Core().compile_model(str(path), "CPU", properties)
        self._outputs = [(port.get_any_name(), port) for port in self._compiled.outputs]
        self._local = threading.local()
        self.keys = frozenset({SIGNATURE})
        """Conversion keeps the serving signature only."""

    def run(self, key: str, inputs: Arrays) -> Arrays:
        request = getattr(self._local, "request", None)
        if request is None:
            request = self._local.request = self._compiled.create_infer_request()
        try:
            results = request.infer(inputs)
        except RuntimeError as error:
            raise RuntimeInputError(str(error)) from None
        return {name: np.array(results[port]) for name, port in self._outputs}
