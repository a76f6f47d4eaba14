"""Benchmark: sustained throughput of the whole pipeline, and its end-to-end latency under load.

    .venv/bin/python -m tests.benchmarks.bench_system [--detectors 1,2] [--cameras 8]
        [--phase-s 30] [--saturation-s 25] [--photos 16]

Needs the local stack (`maskwatch stack up`). For each detector count it starts real
`maskwatch aggregator` and `maskwatch detector` processes on fresh topics, a fresh consumer
group and a fresh Redis key prefix, and drives them with the load generator (N cameras
replaying the same crowd photos):

1. warm-up: a few frames, until every one is counted (start-up excluded from all figures);
2. sustained throughput: a backlog of frames is put in Kafka at once and the rate at which
   the group drains it into Redis is measured (first → last frame counted). Above that rate
   lag grows without bound; below it, it stays bounded — which steps 3 and 4 check;
3. 50 % and 80 % of that rate, paced, for --phase-s each: p50 / p95 / p99 latency from
   capture to counted in Redis, detector lag (frames not yet committed) while streaming,
   and CPU (cores) and RSS of every process: detectors, aggregator, model server, Kafka,
   Redis. The stack's services are shared with anything else running on this machine.

The detector issue's serial baseline (one frame, one face at a time, in-process) runs on the
same photos in the same run, first. Prints a table and writes docs/system_bench.json and
docs/system_bench.png (latency against offered load).
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import click
import redis

from devtools.probes import group_lag, kafka_probe
from devtools.run import Children, child_env
from runtime.kafka import KafkaSettings, create_topics, delete_topics
from schemas.redis_state import Keys
from tests.benchmarks.system.loadgen import PHOTOS, SHARED, LoadGen, load_photos
from tests.benchmarks.system.probes import LatencyProbe, ProcessStats, percentile, stack_pids

REPO = Path(__file__).resolve().parents[2]
DETECTOR_MODEL = SHARED / "models" / "retinaface_mnet025.onnx"


class Counted:
    """Frames the aggregator has counted under one key prefix (all cameras)."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.client, self.keys = client, keys

    def __call__(self) -> int:
        return int(self.client.hget(self.keys.totals, "frames") or 0)

    def wait_for(self, target: int, timeout_s: float) -> tuple[float | None, float | None]:
        """Poll until `target` frames are counted: (time the count first rose, time it was
        reached), or Nones on timeout."""
        start_count, first, deadline = self(), None, time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            now_count = self()
            if first is None and now_count > start_count:
                first = time.monotonic()
            if now_count >= target:
                return first, time.monotonic()
            time.sleep(0.1)
        return first, None


def start_stages(run: str, detectors: int, kafka: KafkaSettings, prefix: str) -> Children:
    env = {
        **child_env_for(kafka, prefix),
        "MASKWATCH_DETECTOR_GROUP_ID": f"bench-{run}-detectors",
        "MASKWATCH_AGGREGATOR_GROUP_ID": f"bench-{run}-aggregator",
        "MASKWATCH_DETECTOR_MAX_AGE_S": "3600",  # measure work, not the too-old shortcut
        # as the README's figures ran
        "MASKWATCH_DETECTOR_DETECTOR__BACKEND": "retinaface-mobilenet",
        "MASKWATCH_DETECTOR_DETECTOR__MODEL_PATH": str(DETECTOR_MODEL),
    }
    log_dir = REPO / "var" / "bench" / run
    log_dir.mkdir(parents=True, exist_ok=True)
    children = Children(log_dir, env)
    children.start("aggregator", "aggregator", ["aggregator"], {})
    for i in range(detectors):
        children.start(
            f"detector-{i}",
            "detector",
            ["detector"],
            {"MASKWATCH_DETECTOR_WORKER_ID": f"bench-{run}-{i}"},
        )
    return children


def child_env_for(kafka: KafkaSettings, prefix: str) -> dict[str, str]:
    """The pipeline runner's child environment, pointed at this run's topics and keys."""
    env = child_env(prefix, 0)
    env |= {
        f"MASKWATCH_KAFKA_{name.upper()}": str(value) for name, value in kafka.model_dump().items()
    }
    return env


def lag_sampler(
    kafka: KafkaSettings, group: str, stop: threading.Event, out: list[tuple[float, int]]
) -> threading.Thread:
    def loop() -> None:
        with kafka_probe(kafka) as (admin, consumer):
            while not stop.wait(2.0):
                out.append(
                    (time.monotonic(), group_lag(admin, consumer, group, kafka.frames_topic))
                )

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    return thread


def run_config(
    detectors: int, cameras: int, photos_n: int, phase_s: float, saturation_s: float
) -> dict[str, Any]:
    run = f"{detectors}d-{uuid.uuid4().hex[:6]}"
    kafka = KafkaSettings.with_topic_prefix(f"bench.{run}", partitions=6)
    create_topics(kafka)
    prefix = f"bench:{run}:"
    client = redis.Redis(host="127.0.0.1", port=6379, decode_responses=True)
    keys = Keys(prefix)
    counted = Counted(client, keys)
    gen = LoadGen(kafka, [f"bench-cam-{i:02d}" for i in range(cameras)], load_photos(photos_n))
    children = start_stages(run, detectors, kafka, prefix)
    probe = LatencyProbe(client, keys)
    probe.start()
    pids = {c.name: c.process.pid for c in children.started} | stack_pids()
    stats = ProcessStats(pids)
    out: dict[str, Any] = {"detectors": detectors, "cameras": cameras, "phases": []}
    try:
        started = time.monotonic()
        gen.stream(rate_fps=5, frames=2 * detectors)
        if counted.wait_for(len(gen.sent), 300)[1] is None:
            raise click.ClickException(f"warm-up frames not counted; logs in var/bench/{run}")
        click.echo(f"[{detectors} detector(s)] warm after {time.monotonic() - started:.0f} s")

        def drain_rate(frames: int) -> float:
            target = len(gen.sent) + frames
            stats.mark()
            gen.stream(rate_fps=1000, frames=frames)
            first, last = counted.wait_for(target, 600)
            if first is None or last is None or last <= first:
                raise click.ClickException("backlog not drained")
            out["saturation_processes"] = stats.interval()
            return (frames - 1) / (last - first)

        rough = drain_rate(4 * detectors)
        backlog = max(8, round(rough * saturation_s))
        capacity = drain_rate(backlog)
        out |= {"sustained_fps": round(capacity, 3), "backlog_frames": backlog}
        click.echo(
            f"[{detectors} detector(s)] sustained throughput {capacity:.2f} frames/s "
            f"(backlog of {backlog} drained)"
        )
        for share in (0.5, 0.8):
            rate = share * capacity
            lags: list[tuple[float, int]] = []
            stop = threading.Event()
            sampler = lag_sampler(kafka, f"bench-{run}-detectors", stop, lags)
            load0 = os.getloadavg()[0]
            stats.mark()
            t0 = time.time()
            sent = gen.stream(rate_fps=rate, seconds=phase_s)
            stream_end = time.monotonic()
            processes = stats.interval()
            _, done = counted.wait_for(len(gen.sent), 300)
            t1 = time.time()
            stop.set()
            sampler.join(10)
            latencies = probe.between(t0, t1)
            during = [lag for at, lag in lags if at <= stream_end]
            lag_end = during[-1] if during else 0
            phase: dict[str, Any] = {
                "share": share,
                "offered_fps": round(rate, 3),
                "frames": sent,
                "latency_samples": len(latencies),
                "p50_s": round(percentile(latencies, 50), 3),
                "p95_s": round(percentile(latencies, 95), 3),
                "p99_s": round(percentile(latencies, 99), 3),
                "lag_max": max(during, default=0),
                "lag_at_end": lag_end,
                "lag_bounded": lag_end <= max(3, rate * 10),
                "drained_after_s": None if done is None else round(done - stream_end, 1),
                "load_avg_1m": round(load0, 1),
                "processes": processes,
            }
            out["phases"].append(phase)
            click.echo(
                f"[{detectors} detector(s)] {int(share * 100)} %: {rate:.2f} fps, "
                f"p50 {phase['p50_s']} s p95 {phase['p95_s']} s p99 {phase['p99_s']} s, "
                f"lag max {phase['lag_max']}"
            )
        return out
    finally:
        probe.stop()
        children.stop_all(30)
        gen.close()
        delete_topics(
            kafka,
            [kafka.frames_topic, kafka.results_topic, kafka.dead_letter_topic, kafka.alerts_topic],
        )
        stale = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if stale:
            client.delete(*stale)
        client.close()


def serial(photos_n: int) -> dict[str, float]:
    from tests.benchmarks.bench_detector import serial_baseline
    from workers.detector.backends import detector_config

    paths = sorted(PHOTOS.glob("*.jpg"))[:photos_n]
    weights = REPO / "serving" / "models" / "mask_classifier"
    config = detector_config(backend="retinaface-mobilenet", model_path=DETECTOR_MODEL)
    return serial_baseline(paths, config, weights)


def table(report: dict[str, Any]) -> str:
    lines = [
        f"serial baseline (detector issue, in-process, one face at a time): "
        f"{report['serial']['fps']:.2f} frames/s on the same {report['photos']} photos",
        f"{'detectors':>9} {'sustained':>9} {'load':>5} {'offered':>8} {'p50 s':>6} "
        f"{'p95 s':>6} {'p99 s':>6} {'n':>4} {'lag max':>7} {'bounded':>7} "
        f"{'det CPU':>7} {'det RSS':>7} {'agg CPU':>7} {'srv CPU':>7} {'kafka':>6} "
        f"{'redis':>6}",
    ]
    for config in report["configs"]:
        for phase in config["phases"]:
            procs = phase["processes"]
            det = [v for k, v in procs.items() if k.startswith("detector")]

            def cpu(name: str, procs: dict[str, Any] = procs) -> str:
                return f"{procs[name]['cpu_cores']:.2f}" if name in procs else "-"

            lines.append(
                f"{config['detectors']:>9} {config['sustained_fps']:>9.2f} "
                f"{int(phase['share'] * 100):>4}% {phase['offered_fps']:>8.2f} "
                f"{phase['p50_s']:>6.2f} {phase['p95_s']:>6.2f} {phase['p99_s']:>6.2f} "
                f"{phase['latency_samples']:>4} {phase['lag_max']:>7} "
                f"{'yes' if phase['lag_bounded'] else 'NO':>7} "
                f"{sum(d['cpu_cores'] for d in det):>7.2f} "
                f"{sum(d['rss_mb'] for d in det):>6.0f}M {cpu('aggregator'):>7} "
                f"{cpu('model-server'):>7} {cpu('kafka'):>6} {cpu('redis'):>6}"
            )
    for config in report["configs"]:
        sat = config["saturation_processes"]
        det = sum(v["cpu_cores"] for k, v in sat.items() if k.startswith("detector"))
        lines.append(
            f"at saturation ({config['detectors']} detector(s), "
            f"{config['sustained_fps']:.2f} frames/s): detectors {det:.2f} cores, "
            f"model server {sat.get('model-server', {}).get('cpu_cores', 0):.2f}, "
            f"aggregator {sat.get('aggregator', {}).get('cpu_cores', 0):.2f}, "
            f"Kafka {sat.get('kafka', {}).get('cpu_cores', 0):.2f}"
        )
    lines.append(
        "CPU in cores (1.00 = one core busy) averaged over the phase; det = all "
        "detector processes together; RSS at the end of the phase"
    )
    return "\n".join(lines)


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for config, color in zip(report["configs"], ("tab:blue", "tab:red", "tab:green"), strict=False):
        x = [p["offered_fps"] for p in config["phases"]]
        for q, style in (("p50_s", "-o"), ("p95_s", "--s"), ("p99_s", ":^")):
            ax.plot(
                x,
                [p[q] for p in config["phases"]],
                style,
                color=color,
                label=f"{config['detectors']} detector(s) {q[:3]}",
            )
        ax.axvline(config["sustained_fps"], color=color, lw=0.8)
        ax.annotate(
            f"sustained {config['sustained_fps']:.2f}/s ({config['detectors']}d)",
            (config["sustained_fps"], 0),
            rotation=90,
            fontsize=7,
            va="bottom",
        )
    ax.set_xlabel("offered load (frames/s, all cameras)")
    ax.set_ylabel("capture → counted in Redis (s)")
    ax.set_title(
        f"maskwatch end-to-end latency, {report['cpus']} CPUs "
        f"(load avg {report['load_avg_start']:.1f} at start)"
    )
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


@click.command()
@click.option("--detectors", default="1,2", show_default=True, help="Detector counts to run.")
@click.option("--cameras", default=8, show_default=True, help="Simulated cameras.")
@click.option(
    "--photos",
    "photos_n",
    default=16,
    show_default=True,
    help="Crowd photos replayed (the serial baseline uses the same ones).",
)
@click.option("--phase-s", default=30.0, show_default=True, help="Seconds per paced phase.")
@click.option(
    "--saturation-s",
    default=25.0,
    show_default=True,
    help="Size the backlog to take about this long to drain.",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=REPO / "docs",
    show_default=True,
)
def main(
    detectors: str, cameras: int, photos_n: int, phase_s: float, saturation_s: float, out_dir: Path
) -> None:
    report: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "load_avg_start": os.getloadavg()[0],
        "photos": photos_n,
        "cameras": cameras,
        "phase_s": phase_s,
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    click.echo(f"serial baseline on {photos_n} photos ...")
    report["serial"] = serial(photos_n)
    report["configs"] = [
        run_config(int(n), cameras, photos_n, phase_s, saturation_s) for n in detectors.split(",")
    ]
    report["load_avg_end"] = os.getloadavg()[0]
    click.echo("\n" + table(report))
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "system_bench.json").write_text(json.dumps(report, indent=2) + "\n")
    plot(report, out_dir / "system_bench.png")
    click.echo(f"wrote {out_dir / 'system_bench.json'} and {out_dir / 'system_bench.png'}")


if __name__ == "__main__":
    main()
