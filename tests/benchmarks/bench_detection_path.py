"""The detector's RetinaFace step before and after tuning, side by side on the same photos.

  before  ONNX Runtime's default session (thread pool sized to the node, spin-waiting) and
          the earlier input conversion (float HWC copy, mean subtraction, transpose copy);
  tuned   `retinaface_mobilenet.session_options` (threads = CPU share, all graph optimisations,
          sequential, no spinning) and the one-pass `to_input`.
Both run the same model on the same crowd photos, rounds alternating. Figures: ms per frame
(wall) and CPU-ms per frame of the whole process (core-seconds are what a node pays for),
median round. Not a test: prints, asserts nothing.

    .venv/bin/python tests/benchmarks/bench_detection_path.py --photos 20 --rounds 3
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import onnxruntime as ort

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from runtime.cpus import cpu_share  # noqa: E402
from workers.detector.backends import detector_config  # noqa: E402
from workers.detector.backends.base import detection_scale  # noqa: E402
from workers.detector.backends.configs import BackendConfig  # noqa: E402
from workers.detector.backends.retinaface_mobilenet import (  # noqa: E402
    MEAN_BGR,
    session_options,
    to_input,
)

F32 = npt.NDArray[np.float32]


def to_input_before(image: npt.NDArray[np.uint8], scale: float) -> F32:
    """The input conversion as it was before tuning (kept here only to compare against)."""
    resized = image
    if scale != 1.0:
        interpolation = cv2.INTER_LINEAR if scale > 1.0 else cv2.INTER_AREA
        resized = np.asarray(
            cv2.resize(image, None, fx=scale, fy=scale, interpolation=interpolation), np.uint8
        )
    tensor = resized.astype(np.float32) - MEAN_BGR
    return np.ascontiguousarray(tensor.transpose(2, 0, 1)[None])


def run_variant(
    session: ort.InferenceSession,
    convert: Callable[[npt.NDArray[np.uint8], float], F32],
    images: list[npt.NDArray[np.uint8]],
    config: BackendConfig,
) -> tuple[float, float, float]:
    """(ms/frame wall, CPU-ms/frame, ms/frame in the input conversion alone)."""
    convert_s = 0.0
    wall, cpu = time.perf_counter(), time.process_time()
    for image in images:
        started = time.perf_counter()
        tensor = convert(image, detection_scale((image.shape[1], image.shape[0]), config))
        convert_s += time.perf_counter() - started
        session.run(None, {"input": tensor})
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    n = len(images)
    return 1000 * wall / n, 1000 * cpu / n, 1000 * convert_s / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument(
        "--model", type=Path, default=REPO.parent / "shared" / "models" / "retinaface_mnet025.onnx"
    )
    parser.add_argument("--photos", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    paths = sorted((args.data / "crowd" / "images").glob("*.jpg"))[: args.photos]
    images = [np.asarray(cv2.imread(str(p), cv2.IMREAD_COLOR), np.uint8) for p in paths]
    config = detector_config()
    model = args.model.read_bytes()
    providers = ["CPUExecutionProvider"]
    variants = {
        "before": (ort.InferenceSession(model, providers=providers), to_input_before),
        "tuned": (
            ort.InferenceSession(
                model, sess_options=session_options(cpu_share()), providers=providers
            ),
            to_input,
        ),
    }
    for session, convert in variants.values():
        run_variant(session, convert, images[:2], config)  # warm-up
    results: dict[str, list[tuple[float, float, float]]] = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, (session, convert) in variants.items():
            results[name].append(run_variant(session, convert, images, config))
    print(
        f"{len(images)} crowd photos (upscaled to {config.upscale_to_px} px as the worker does), "
        f"CPU share {cpu_share()}, {args.rounds} rounds, median round"
    )
    print("| variant | ms/frame | CPU-ms/frame | input conversion ms/frame |")
    print("|---|---|---|---|")
    for name, rounds in results.items():
        wall, cpu, convert_ms = (statistics.median(r[i] for r in rounds) for i in range(3))
        print(f"| {name} | {wall:.1f} | {cpu:.1f} | {convert_ms:.2f} |")


if __name__ == "__main__":
    main()
