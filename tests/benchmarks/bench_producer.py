"""Benchmark: how many 720p cameras at 2 fps one producer process sustains, and CPU per camera.

    .venv/bin/python -m tests.benchmarks.bench_producer [--cameras 1,2,4,8,16] [--source rtsp|file]
        [--seconds 15] [--source-fps 25]

Each camera is a real 1280x720 H.264 stream at --source-fps (made with ffmpeg from the crowd
photos in ../shared): with --source rtsp (default) one GStreamer RTSP server serves one
stream per camera; with --source file every camera replays the MP4 in real time. The
producer decodes every source frame (as it must for a live camera), keeps 2 fps, encodes
JPEG and sends to a fresh topic of the local Kafka (deleted afterwards).

A step "sustains" N cameras when, over the measured window, every camera read at least 95%
of its source frames and sent at least 95% of its 2 fps, with nothing dropped. CPU is the
producer process's own CPU time over the window (cores = CPU seconds per wall second);
the RTSP server's CPU is reported apart. The machine is shared: rerun before trusting a
small difference.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from pathlib import Path

from prometheus_client import CollectorRegistry

from runtime.kafka import KafkaSettings, create_topics, delete_topics
from tests.workers.producer.conftest import RtspServer
from workers.producer.config import CameraConfig
from workers.producer.main import Producer, ProducerSettings
from workers.producer.metrics import ProducerMetrics
from workers.producer.sources import configure_ffmpeg

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
TARGET_FPS = 2.0


def make_video(folder: Path, source_fps: int, seconds: int) -> Path:
    """A camera-like 720p stream: a new crowd photo every second, a slow pan and sensor noise
    (so every frame carries real residuals, as in a live camera), capped at 3 Mbit/s."""
    video = folder / "crowd720.mp4"
    images = SHARED / "data" / "crowd" / "images"
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-framerate", "1",
         "-pattern_type", "glob", "-i", str(images / "maksssksksss[1-3]*.jpg"),
         "-t", str(seconds),
         "-vf", "scale=1360:766:force_original_aspect_ratio=decrease,"
                "pad=1360:766:(ow-iw)/2:(oh-ih)/2,setsar=1,fps=" + str(source_fps) + ","
                "crop=1280:720:'40+40*sin(t)':'23+23*cos(t)',noise=alls=6:allf=t,format=yuv420p",
         "-b:v", "3M", "-maxrate", "3M", "-bufsize", "6M",
         "-r", str(source_fps), "-c:v", "libx264", "-preset", "ultrafast",
         "-g", str(source_fps * 2), "-bf", "0", str(video)],
        check=True,
    )  # fmt: skip
    return video


def process_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def encode_totals(metrics: ProducerMetrics, ids: list[str]) -> tuple[float, float]:
    """Encode seconds and encoded frames, summed over all cameras."""
    get = metrics.registry.get_sample_value
    name = "maskwatch_producer_encode_seconds"
    return (
        sum(get(f"{name}_sum", {"camera": c}) or 0.0 for c in ids),
        sum(get(f"{name}_count", {"camera": c}) or 0.0 for c in ids),
    )


def drop_reasons(metrics: ProducerMetrics) -> dict[str, int]:
    """Frames dropped since the start, by reason, over all cameras."""
    counts: dict[str, int] = {}
    for metric in metrics.registry.collect():
        for sample in metric.samples:
            if sample.name == "maskwatch_producer_frames_dropped_total":
                reason = sample.labels["reason"]
                counts[reason] = counts.get(reason, 0) + int(sample.value)
    return counts


def step(n: int, source: str, video: Path, kafka: KafkaSettings, seconds: float, fps: int) -> bool:
    server = RtspServer(video) if source == "rtsp" else None
    if server:
        server.start()
    cameras = [
        CameraConfig(
            id=f"bench-{i}",
            source=server.url if server else f"file:{video}",
            fps=TARGET_FPS,
            max_resolution_wh=(1280, 720),
        )
        for i in range(n)
    ]
    metrics = ProducerMetrics(CollectorRegistry())
    settings = ProducerSettings(open_timeout_s=20, read_timeout_s=10, shutdown_timeout_s=10)  # type: ignore[call-arg]
    producer = Producer(cameras, settings, kafka, metrics)
    producer.start()
    ids = [c.id for c in cameras]

    def totals(name: str) -> list[float]:
        return [metrics.total(name, c) for c in ids]

    deadline = time.monotonic() + 60
    while min(totals("frames_sent")) < 2 and time.monotonic() < deadline:  # all connected
        time.sleep(0.5)
    time.sleep(2)
    server_pid = server.pid if server else None
    read0, sent0, drop0 = totals("frames_read"), totals("frames_sent"), totals("frames_dropped")
    cpu0, wall0 = time.process_time(), time.monotonic()
    srv0 = process_cpu_s(server_pid) if server_pid else 0.0
    encode0 = encode_totals(metrics, ids)
    time.sleep(seconds)
    wall = time.monotonic() - wall0
    cores = (time.process_time() - cpu0) / wall
    srv_cores = (process_cpu_s(server_pid) - srv0) / wall if server_pid else 0.0
    read_fps = [(b - a) / wall for a, b in zip(read0, totals("frames_read"), strict=True)]
    sent_fps = [(b - a) / wall for a, b in zip(sent0, totals("frames_sent"), strict=True)]
    dropped = sum(totals("frames_dropped")) - sum(drop0)
    reasons = drop_reasons(metrics)
    encode_s, encode_n = (b - a for a, b in zip(encode0, encode_totals(metrics, ids), strict=True))
    producer.stop()
    if server:
        server.kill()
    ok = min(read_fps) >= 0.95 * fps and min(sent_fps) >= 0.95 * TARGET_FPS and dropped == 0
    print(
        f"{n:>3} cameras: read {min(read_fps):5.1f}-{max(read_fps):5.1f} fps/cam, "
        f"sent {min(sent_fps):4.2f}-{max(sent_fps):4.2f} fps/cam, dropped {dropped:.0f} {reasons}, "
        f"producer CPU {cores:4.2f} cores ({100 * cores / n:4.1f}% of a core per camera), "
        f"encode {1000 * encode_s / max(encode_n, 1):4.1f} ms/frame"
        + (f", RTSP server CPU {srv_cores:4.2f} cores" if server else "")
        + f", load avg {os.getloadavg()[0]:.1f}"
        + f"  -> {'sustained' if ok else 'NOT sustained'}",
        flush=True,
    )
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cameras", default="1,2,4,8,12,16")
    parser.add_argument("--source", choices=("rtsp", "file"), default="rtsp")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--source-fps", type=int, default=25)
    args = parser.parse_args()
    configure_ffmpeg()
    counts = [int(n) for n in args.cameras.split(",")]
    kafka = KafkaSettings(frames_topic=f"bench.producer.{os.getpid()}.frames", frames_partitions=6)
    create_topics(kafka)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            video = make_video(Path(tmp), args.source_fps, seconds=int(args.seconds) + 90)
            print(
                f"source: {args.source}, 1280x720 H.264 at {args.source_fps} fps; "
                f"target {TARGET_FPS} fps; {os.cpu_count()} CPUs (shared with other work)",
                flush=True,
            )
            for n in counts:
                if not step(n, args.source, video, kafka, args.seconds, args.source_fps):
                    break
    finally:
        delete_topics(kafka, [kafka.frames_topic])


if __name__ == "__main__":
    main()
