"""Crops/s per core of every classifier runtime, side by side in one run on the same crops.

TensorFlow fp32 (the SavedModel), OpenVINO fp32, bf16 and int8 (the IR `maskwatch export`
writes beside it), each with ONE inference thread, at batch 1, 8 and 32, on real held-out
crowd face crops. Rounds interleave the variants (variant-major inside a round), so a busy
machine slows them alike; the median round is printed. Columns: crops/s wall-clock with one
thread (= crops/s per core), and crops per CPU-second of the whole process (what a node
pays: it also counts any helper threads a runtime starts). Not a test: prints, asserts
nothing. The held-out macro-F1 of each variant is the export's record (the accuracy gate).

    .venv/bin/python tests/benchmarks/bench_classifier_runtimes.py --version-dir DIR
      (DIR: an exported version folder with openvino/; default: export the shipped
      classifier into a temporary folder first, which takes minutes)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import numpy.typing as npt

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from schemas.model_server import INPUT, SIGNATURE  # noqa: E402
from serving.runtimes import (  # noqa: E402
    RUNTIMES,
    Runtime,
    RuntimeConfig,
    load_runtime,
    recorded_variants,
)

BATCHES = (1, 8, 32)


def held_out_crops(data: Path) -> npt.NDArray[np.uint8]:
    from imaging.crop import CropConfig
    from serving.dataset import SPLITS, crowd_faces

    crops_bgr, _, splits = crowd_faces(data, CropConfig())
    return np.ascontiguousarray(crops_bgr[splits == SPLITS.index("test")][..., ::-1])


def export_shipped(base: Path, data: Path) -> Path:
    """The shipped classifier exported with its OpenVINO variants (as `maskwatch export`)."""
    from click.testing import CliRunner

    from serving.cli import export_cli

    result = CliRunner().invoke(
        export_cli, ["--model-base", str(base), "--data", str(data), "--threads", "1"]
    )
    if result.exit_code != 0:
        raise SystemExit(f"export failed:\n{result.output}")
    print(result.output)
    return base / "mask_classifier" / "1"


def measure(
    runtime: Runtime, crops: npt.NDArray[np.uint8], batch: int, seconds: float
) -> tuple[float, float]:
    """(crops/s wall, crops per process CPU-second) of back-to-back calls for `seconds`."""
    inputs = [crops[i : i + batch] for i in range(0, len(crops) - batch + 1, batch)]
    runtime.run(SIGNATURE, {INPUT: inputs[0]})  # warm-up at this shape
    done, index = 0, 0
    wall, cpu = time.perf_counter(), time.process_time()
    stop = wall + seconds
    while time.perf_counter() < stop:
        runtime.run(SIGNATURE, {INPUT: inputs[index % len(inputs)]})
        done += batch
        index += 1
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return done / wall, done / max(cpu, 1e-9)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--version-dir", type=Path, default=None)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        version_dir = args.version_dir or export_shipped(Path(scratch), args.data)
        crops = held_out_crops(args.data)
        runtimes = {name: load_runtime(version_dir, RuntimeConfig(name, 1)) for name in RUNTIMES}
        results: dict[tuple[str, int], list[tuple[float, float]]] = {}
        for _ in range(args.rounds):
            for name, runtime in runtimes.items():
                for batch in BATCHES:
                    figures = measure(runtime, crops, batch, args.seconds)
                    results.setdefault((name, batch), []).append(figures)
        record = recorded_variants(version_dir)
    print(
        f"{len(crops)} held-out crowd crops, 1 inference thread, {args.rounds} rounds × "
        f"{args.seconds:g} s, median round"
    )
    header = "| runtime | held-out crowd macro-F1 (Δ vs TF) |"
    header += "".join(f" b{b} crops/s/core | b{b} crops/CPU-s |" for b in BATCHES)
    print(header)
    print("|---|---|" + "---|---|" * len(BATCHES))
    for name in RUNTIMES:
        scores = record.get(name, {})
        f1 = (
            f"{scores['macro_f1']:.4f} ({scores['macro_f1_delta']:+.4f})"
            if scores
            else "(not recorded)"
        )
        row = f"| {name} | {f1} |"
        for batch in BATCHES:
            wall = statistics.median(w for w, _ in results[(name, batch)])
            per_cpu = statistics.median(c for _, c in results[(name, batch)])
            row += f" {wall:.1f} | {per_cpu:.1f} |"
        print(row)


if __name__ == "__main__":
    main()
