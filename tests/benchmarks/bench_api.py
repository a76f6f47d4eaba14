"""Benchmark: GET /api/v1/cameras for a fleet, and what keeping the overview costs.

    .venv/bin/python tests/benchmarks/bench_api.py [--cameras 500] [--requests 20]

On the local stack's Redis, under a unique prefix (deleted afterwards), `--cameras` cameras
with labels get a few minutes of results through the real aggregator, and every one of them
plus `--unseen` cameras that never send are registered as configured with a health record,
as the producers' Redis sink writes them. Then, side by side:
1. per-request read (what the API did before): every camera's ~93 keys, pipelined;
2. the maintained overview's costs: the full load (resync), one tick (windows rolled from
   held buckets; configured cameras and health records re-read, rewritten before each tick
   as producers do, so every summary is re-held), the health read alone, one
   page of all cameras serialised;
3. GET /api/v1/cameras over HTTP against a real uvicorn server: median and p95 latency and
   the body size; also with a label filter.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from datetime import UTC, datetime

import httpx
import redis
from redis.asyncio import Redis

from runtime.settings import RuntimeSettings
from schemas.camera_health import ConfiguredCamera
from schemas.common import encode
from schemas.redis_state import Keys
from workers.aggregator.core import Aggregator
from workers.aggregator.settings import AggregatorSettings
from workers.aggregator.synthetic import result
from workers.api.models import camera_summary
from workers.api.overview import LiveOverview
from workers.api.settings import ApiSettings
from workers.api.store import Store, replies_at
from workers.producer.config import CameraConfig
from workers.producer.health import SourceHealth, health_record
from workers.producer.health_redis import RedisHealthSink

SITES = ("north", "south", "east", "west", "harbour")


class Rec:
    def __init__(self, value: bytes) -> None:
        self.topic, self.partition, self.offset, self.key, self.value = "b", 0, 0, None, value


def fill(prefix: str, cameras: int, minutes: int) -> None:
    """A result per camera every 20 s over the last `minutes` minutes."""
    client = redis.Redis(decode_responses=True)
    settings = AggregatorSettings(key_prefix=prefix, min_faces=10, alert_window="1m")
    aggregator = Aggregator(settings, client, lambda _: None)
    now = time.time()
    batch = []
    for step in range(minutes * 3):
        t = now - minutes * 60 + step * 20
        for c in range(cameras):
            labels = {"site": SITES[c % len(SITES)], "zone": f"z{c % 7}"}
            batch.append(result(f"cam-{c:04d}", step, t, masked=c % 4, unmasked=1, labels=labels))
        if len(batch) >= 2000:
            aggregator.handle([Rec(encode(r)) for r in batch], now)
            batch = []
    aggregator.handle([Rec(encode(r)) for r in batch], now)
    client.close()


def register(prefix: str, cameras: int, unseen: int) -> None:
    """Every camera configured, with a health record (lasting the benchmark), as producers
    write them; `unseen` more configured cameras that never send (half disconnected)."""
    sink = RedisHealthSink(redis.Redis(), Keys(prefix))
    now = datetime.now(UTC)
    ids = [f"cam-{c:04d}" for c in range(cameras + unseen)]
    sink.register(
        [
            ConfiguredCamera(
                camera_id=camera,
                labels={"site": SITES[c % len(SITES)], "zone": f"z{c % 7}"},
                configured_fps=3,
                producer="bench",
            )
            for c, camera in enumerate(ids)
        ],
        now,
    )
    records = []
    for c, camera in enumerate(ids):
        state = "disconnected" if c >= cameras and c % 2 else "connected"
        config = CameraConfig(id=camera, source="rtsp://camera/stream", fps=3)
        source = SourceHealth(state, now, last_frame_at=now, encoded=c)  # type: ignore[arg-type]
        records.append(health_record(config, source, 2.9, 0, "bench", now, 3600))
    sink.publish(records)
    sink.close()


def timed(label: str, seconds: list[float], extra: str = "") -> None:
    ms = sorted(s * 1000 for s in seconds)
    p95 = ms[min(len(ms) - 1, int(len(ms) * 0.95))]
    print(f"{label:<44} median {statistics.median(ms):8.1f} ms   p95 {p95:8.1f} ms  {extra}")


async def in_process(prefix: str, runs: int, cameras: int, unseen: int) -> None:
    redis_client = Redis(decode_responses=True)
    store = Store(redis_client, Keys(prefix), 60.0)
    registry = await store.registry()
    reads, assemble = [], []
    for _ in range(runs):
        t0 = time.perf_counter()
        now = time.time()
        raws = await store.raw(registry, now)
        t1 = time.perf_counter()
        for raw in raws:
            camera_summary(replies_at(raw, store.keys, now), now, 60.0)
        t2 = time.perf_counter()
        reads.append(t1 - t0)
        assemble.append(t2 - t1)
    timed("1. per request: read every camera", reads, f"({len(registry)} script calls)")
    timed("   + assemble every summary", assemble)
    fleet = LiveOverview(store)
    resync, tick, health, page = [], [], [], []
    for _ in range(runs):
        t0 = time.perf_counter()
        await fleet.resync()
        t1 = time.perf_counter()
        register(prefix, cameras, unseen)  # new reports, as every few seconds: re-held
        t1b = time.perf_counter()
        await fleet.tick()
        t2 = time.perf_counter()
        configured = await store.configured(time.time())
        await store.health(sorted(configured))
        t3 = time.perf_counter()
        total, cams = fleet.page_json({}, 0, 100_000)
        body = "[" + ",".join(cams) + "]"
        t4 = time.perf_counter()
        resync.append(t1 - t0)
        tick.append(t2 - t1b)
        health.append(t3 - t2)
        page.append(t4 - t3)
    timed("2. overview: full load (every resync_s)", resync)
    timed("   one tick (every tick_s; no camera reads)", tick)
    timed("   health read alone (configured + records)", health, f"({len(configured)} cameras)")
    timed("   page of all cameras, serialised", page, f"({total} cameras, {len(body)} B)")
    await redis_client.aclose()


def over_http(prefix: str, runs: int) -> None:
    import threading

    import uvicorn

    from workers.api.app import create_app

    settings = ApiSettings(key_prefix=prefix, runtime=RuntimeSettings(health_port=None))
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=0, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    url = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}/api/v1/cameras"
    with httpx.Client(timeout=30) as client:
        client.get(url)  # waits for the first load
        for params, label in (({}, "all"), ({"label": "site=north"}, "site=north")):
            seconds, size = [], 0
            for _ in range(runs):
                t0 = time.perf_counter()
                reply = client.get(url, params=params)
                seconds.append(time.perf_counter() - t0)
                size = len(reply.content)
            n = reply.json()["total"]
            timed(f"3. GET /api/v1/cameras ({label})", seconds, f"({n} cameras, {size} B)")
    server.should_exit = True
    thread.join(10)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cameras", type=int, default=500)
    parser.add_argument("--unseen", type=int, default=20)
    parser.add_argument("--minutes", type=int, default=5)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    prefix = f"bench-api-{uuid.uuid4().hex[:8]}:"
    client = redis.Redis(decode_responses=True)
    try:
        t0 = time.perf_counter()
        fill(prefix, args.cameras, args.minutes)
        register(prefix, args.cameras, args.unseen)
        print(f"filled {args.cameras} cameras in {time.perf_counter() - t0:.1f} s")
        asyncio.run(in_process(prefix, args.runs, args.cameras, args.unseen))
        over_http(prefix, args.requests)
    finally:
        keys = list(client.scan_iter(match=f"{prefix}*", count=5000))
        for i in range(0, len(keys), 1000):
            client.delete(*keys[i : i + 1000])
        client.close()


if __name__ == "__main__":
    main()
