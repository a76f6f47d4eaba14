"""Crops/s through `maskwatch serve` (gRPC) against calling the same SavedModel in-process.

Exports the classifier (the shipped weights, or random Xception weights when they are
absent: the speed is the same), starts `maskwatch serve` as a separate process, and for
each batch size measures, in one run on one machine:
  in-process   the SavedModel signature called directly in this process;
  server x1    one caller through `GrpcClassifier` (pure protocol overhead);
  server xC    C concurrent callers (the server's batching merges their requests).
The ratio column is server/in-process. Not a test: it prints figures, asserts nothing.

    .venv/bin/python tests/benchmarks/bench_model_server.py --rounds 5 --seconds 2
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def measure(call: Callable[[], None], seconds: float, callers: int) -> tuple[float, list[float]]:
    """(elapsed s, every call's duration) of `callers` threads calling for `seconds`."""
    stop = time.monotonic() + seconds
    durations: list[float] = []
    lock = threading.Lock()

    def loop() -> None:
        while time.monotonic() < stop:
            started = time.perf_counter()
            call()
            with lock:
                durations.append(time.perf_counter() - started)

    began = time.perf_counter()
    threads = [threading.Thread(target=loop) for _ in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - began, durations


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, default=REPO / "serving/models/mask_classifier")
    parser.add_argument("--input-px", type=int, default=128)
    parser.add_argument("--batches", default="1,8,32")
    parser.add_argument("--seconds", type=float, default=2.0, help="per slice")
    parser.add_argument(
        "--rounds", type=int, default=5, help="slices per figure, interleaved across the modes"
    )
    parser.add_argument("--callers", type=int, default=4, help="concurrent server callers")
    args = parser.parse_args()

    import tensorflow as tf

    from serving.export import export_model
    from serving.model import build_classifier
    from serving.weights import load_compact
    from workers.detector.classifier import ClientConfig, GrpcClassifier

    model = build_classifier(args.input_px, weights="none")
    shipped = (args.weights / "weights.json").is_file()
    if shipped:
        load_compact(model, args.weights)
    base = Path(tempfile.mkdtemp(prefix="bench-models-"))
    path = export_model(model, base, "mask_classifier", 1)
    del model

    grpc_port, http_port = free_port(), free_port()
    server = subprocess.Popen(
        [sys.executable, "-c", "from workers.cli import main; main()", "serve",
         "--model-base", str(base), "--host", "127.0.0.1", "--port", str(grpc_port),
         "--runtime-health-port", str(http_port), "--runtime-log-level", "WARNING"],
        cwd=REPO,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/readyz", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("model server did not become ready") from None
                time.sleep(0.5)

        signature = tf.saved_model.load(str(path)).signatures["serving_default"]
        client = GrpcClassifier(
            ClientConfig(
                target=f"127.0.0.1:{grpc_port}", deadline_s=60.0, max_in_flight=args.callers
            )
        )
        rng = np.random.default_rng(0)
        print(
            f"weights: {'shipped' if shipped else 'random'}; input {args.input_px} px; "
            f"{args.rounds} x {args.seconds:g} s per figure, modes interleaved; "
            "server batching defaults (max 32, 2 ms); "
            f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
        )
        header = (
            f"{'batch':>5} {'in-process':>12} {'server x1':>12} {'ratio':>6} "
            f"{f'server x{args.callers}':>12} {'ratio':>6}   median call ms (in-proc / x1)"
        )
        print(header)
        for batch in (int(b) for b in args.batches.split(",")):
            crops = rng.integers(0, 256, (batch, args.input_px, args.input_px, 3), np.uint8)
            tensor = tf.constant(crops)
            signature(crops=tensor)
            client.classify(crops)  # warm both paths for this shape

            def in_process(tensor: object = tensor) -> None:
                signature(crops=tensor)

            def through_server(crops: np.ndarray = crops) -> None:
                client.classify(crops)

            modes = [(in_process, 1), (through_server, 1), (through_server, args.callers)]
            elapsed = [0.0] * len(modes)
            durations: list[list[float]] = [[] for _ in modes]
            for round_ in range(args.rounds):  # interleaved: every mode sees the same load
                for i in sorted(range(len(modes)), key=lambda m: (m + round_) % len(modes)):
                    spent, calls = measure(modes[i][0], args.seconds, modes[i][1])
                    elapsed[i] += spent
                    durations[i] += calls
            rate = [len(d) * batch / e for d, e in zip(durations, elapsed, strict=True)]
            print(
                f"{batch:>5} {rate[0]:>12.1f} {rate[1]:>12.1f} {rate[1] / rate[0]:>6.2f} "
                f"{rate[2]:>12.1f} {rate[2] / rate[0]:>6.2f}   "
                f"{statistics.median(durations[0]) * 1000:.1f} / "
                f"{statistics.median(durations[1]) * 1000:.1f}",
                flush=True,
            )
        client.close()
    finally:
        server.terminate()
        server.wait(30)


if __name__ == "__main__":
    main()
