"""Benchmark: results per second one aggregator applies to Redis, and Redis memory per camera.

    .venv/bin/python tests/benchmarks/bench_aggregator.py [--results 20000] [--kafka]

Three figures, each on the real Redis (and Kafka with --kafka) of the local stack:
1. apply: pre-decoded results through the Lua script, one pipeline per batch;
2. handle: JSON bytes → decode → apply → alert evaluation (what the service does per batch);
3. service (--kafka): results published to a fresh topic, consumed by the real service loop
   (consumer group, commits after Redis) — counted from the first to the last applied result.
Then memory: MEMORY USAGE of every key of one camera holding a full day of buckets.
Keys live under a unique prefix and are deleted afterwards; topics too.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
import uuid
from collections import defaultdict

import redis

from schemas.common import encode
from schemas.redis_state import Keys, epoch_us
from workers.aggregator.apply import Applier
from workers.aggregator.core import Aggregator
from workers.aggregator.settings import AggregatorSettings
from workers.aggregator.synthetic import result, stream


class Rec:
    def __init__(self, value: bytes, offset: int) -> None:
        self.topic, self.partition, self.offset, self.key, self.value = "b", 0, offset, None, value


def cleanup(client: redis.Redis, prefix: str) -> None:
    batch = list(client.scan_iter(match=f"{prefix}*", count=5000))
    for i in range(0, len(batch), 1000):
        client.delete(*batch[i : i + 1000])


def report(what: str, batch: int, cameras: int, n: int, rates: list[float]) -> None:
    runs = ", ".join(f"{r:,.0f}" for r in rates)
    print(
        f"{what:<7} batch={batch:<4} cameras={cameras:<4} {n} results: "
        f"median {statistics.median(rates):,.0f}/s (runs: {runs})"
    )


def bench_apply(client: redis.Redis, n: int, cameras: int, batch: int, repeats: int) -> None:
    rates = []
    for _ in range(repeats):
        prefix = f"bench:{uuid.uuid4().hex[:8]}:"
        now = time.time()
        results = stream([f"cam-{i}" for i in range(cameras)], n // cameras, now - 120)
        applier = Applier(client, Keys(prefix), window_s=3600, camera_ttl_s=86400)
        started = time.perf_counter()
        for i in range(0, len(results), batch):
            applier.apply_batch(results[i : i + batch], now)
        rates.append(len(results) / (time.perf_counter() - started))
        cleanup(client, prefix)
    report("apply", batch, cameras, len(results), rates)


def bench_handle(client: redis.Redis, n: int, cameras: int, batch: int, repeats: int) -> None:
    rates = []
    for _ in range(repeats):
        prefix = f"bench:{uuid.uuid4().hex[:8]}:"
        now = time.time()
        results = stream([f"cam-{i}" for i in range(cameras)], n // cameras, now - 120)
        records = [Rec(encode(r), i) for i, r in enumerate(results)]
        agg = Aggregator(AggregatorSettings(key_prefix=prefix), client, lambda _e: None)
        started = time.perf_counter()
        for i in range(0, len(records), batch):
            agg.handle(records[i : i + batch], now)
        rates.append(len(records) / (time.perf_counter() - started))
        cleanup(client, prefix)
    report("handle", batch, cameras, len(results), rates)


def bench_service(client: redis.Redis, n: int, cameras: int, batch: int) -> None:
    from runtime.kafka import KafkaSettings, create_topics, delete_topics, make_producer
    from runtime.service import ServiceRuntime
    from workers.aggregator.main import Service

    tag = uuid.uuid4().hex[:8]
    kafka = KafkaSettings.with_topic_prefix(f"bench.{tag}", partitions=6)
    create_topics(kafka)
    prefix = f"bench:{tag}:"
    try:
        results = stream([f"cam-{i}" for i in range(cameras)], n // cameras, time.time() - 120)
        producer = make_producer(kafka, "bench")
        for r in results:
            producer.send(kafka.results_topic, key=r.camera_id.encode(), value=encode(r))
        producer.flush()
        producer.close()
        settings = AggregatorSettings(key_prefix=prefix, group_id=f"bench-{tag}", max_batch=batch)
        runtime = ServiceRuntime("bench", None)
        service = Service(settings, kafka, runtime)
        thread = threading.Thread(target=service.run, daemon=True)
        thread.start()
        totals = Keys(prefix).totals
        first = last = None
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            frames = int(client.hget(totals, "frames") or 0)
            if frames and first is None:
                first = (time.perf_counter(), frames)
            if frames >= len(results):
                last = time.perf_counter()
                break
            time.sleep(0.01)
        runtime.stopping.set()
        thread.join(30)
        if first is None or last is None:
            print("service: did not finish in time")
            return
        rate = (len(results) - first[1]) / (last - first[0])
        print(
            f"service batch={batch:<4} cameras={cameras:<4} {len(results)} results via Kafka: "
            f"{rate:,.0f}/s (consume → Redis → commit, after the group join)"
        )
    finally:
        cleanup(client, prefix)
        delete_topics(
            kafka,
            [kafka.results_topic, kafka.dead_letter_topic, kafka.alerts_topic, kafka.frames_topic],
        )


def measure_memory(client: redis.Redis, fps: int) -> None:
    """Bytes per key kind of one camera in steady state: `fps` frames per second for the last
    hour (sequence numbers = capture microseconds, as the producer makes them), so the dedupe
    guard holds `seen_ttl_s` = 1 h of frames, plus a result every 10 min over the day before,
    so all 24 hour buckets exist."""
    prefix = f"bench:{uuid.uuid4().hex[:8]}:"
    now = time.time()
    settings = AggregatorSettings(key_prefix=prefix, silent_after_s=1, seen_ttl_s=3600)
    agg = Aggregator(settings, client, lambda _e: None)

    def apply(times: list[float]) -> None:
        for i in range(0, len(times), 500):
            chunk = [
                result("mem-cam", 0, t, masked=int(t) % 3, unmasked=int(t) % 2)
                for t in times[i : i + 500]
            ]
            chunk = [r.model_copy(update={"seq": epoch_us(r.captured_at)}) for r in chunk]
            agg.handle([Rec(encode(r), 0) for r in chunk], now)

    apply([now - 86400 + 600 * i for i in range(138)])
    old_seen = list(client.scan_iter(match=f"{prefix}cam:mem-cam:seen:*"))
    client.delete(*old_seen)  # in steady state these expired long ago
    apply([now - 3600 + i / fps for i in range(3600 * fps)])
    agg.check_silence(now + 5)
    kinds: dict[str, list[int]] = defaultdict(list)
    for name in client.scan_iter(match=f"{prefix}cam:mem-cam:*", count=5000):
        kind = name.split(":")[-1]
        if ":seen:" in name:
            kind = "seen"
        elif ":b:" in name:
            kind = "bucket " + name.split(":")[-2]
        kinds[kind].append(int(client.memory_usage(name) or 0))
    print(
        f"\nmemory of one camera at {fps} fps (MEMORY USAGE, Redis "
        f"{client.info('server')['redis_version']}):"
    )
    for kind, sizes in sorted(kinds.items()):
        print(f"  {kind:<12} {len(sizes):>4} keys  {sum(sizes):>9,} B  ({max(sizes):,} B max)")
    total = sum(sum(sizes) for sizes in kinds.values())
    seen = sum(kinds["seen"])
    print(
        f"  total {total / 1024:,.1f} KiB per camera ({(total - seen) / 1024:,.1f} KiB without "
        f"the dedupe guard; the guard costs {seen / (3600 * fps):.1f} B per frame)"
    )
    cleanup(client, prefix)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=int, default=20_000)
    parser.add_argument("--cameras", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--kafka", action="store_true", help="also through Kafka (the service)")
    parser.add_argument(
        "--memory-fps",
        type=int,
        nargs="*",
        default=[1, 5, 10],
        help="camera frame rates to measure Redis memory at",
    )
    args = parser.parse_args()
    client = redis.Redis.from_url(args.redis_url, decode_responses=True)
    for batch in (1, 100, 500):
        n = args.results if batch > 1 else min(args.results, 3000)
        bench_apply(client, n, args.cameras, batch, args.repeats)
    bench_handle(client, args.results, args.cameras, 500, args.repeats)
    if args.kafka:
        bench_service(client, args.results, args.cameras, 500)
    for fps in args.memory_fps:
        measure_memory(client, fps)


if __name__ == "__main__":
    main()
