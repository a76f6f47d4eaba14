"""Example consumer: maskwatch results -> a DuckDB table, exactly-once in effect across restarts.

Copy this file. It needs `maskwatch-schemas`, `kafka-python` and `duckdb`, nothing else:

    python sink.py consume --db results.duckdb                 # follow the topic
    python sink.py consume --db results.duckdb --exit-at-end   # catch up, then exit
    python sink.py report --db results.duckdb                  # the last 24 h per camera

How it is exactly-once in effect on an at-least-once topic:
- idempotent rows: `results` has PRIMARY KEY (camera_id, seq), the idempotency key of the
  contract, and rows go in with INSERT OR IGNORE, so a result the detectors published twice
  (after a crash or a rebalance) is stored once;
- offsets stored with the data: each batch's rows and the next offset of every partition it
  read are written in ONE DuckDB transaction; on start the sink seeks to those offsets. A
  crash (even kill -9) loses the whole unfinished transaction, rows and offsets together,
  and the restart reads that batch again. No consumer group: Kafka's committed offsets would
  be a second, unsynchronised copy of the position.
Records that do not decode go to `rejected` (with the reason), so the position still moves on.
Times are stored as UTC TIMESTAMP (no zone), so `date_trunc('hour', ...)` is an UTC hour.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
from kafka import KafkaConsumer, TopicPartition
from pydantic import BaseModel, ConfigDict, Field

from schemas.common import SchemaError, decode
from schemas.result import SUPPORTED_RESULT_VERSIONS, FrameResult

SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS results (
    camera_id VARCHAR NOT NULL,
    seq BIGINT NOT NULL,
    captured_at TIMESTAMP NOT NULL,
    processed_at TIMESTAMP NOT NULL,
    status VARCHAR NOT NULL,
    skip_reason VARCHAR,
    faces INTEGER NOT NULL,
    with_mask INTEGER NOT NULL,
    without_mask INTEGER NOT NULL,
    detector VARCHAR NOT NULL,
    classifier VARCHAR NOT NULL,
    schema_version INTEGER NOT NULL,
    kafka_partition INTEGER NOT NULL,
    kafka_offset BIGINT NOT NULL,
    PRIMARY KEY (camera_id, seq)
);
CREATE TABLE IF NOT EXISTS kafka_offsets (
    topic VARCHAR NOT NULL,
    kafka_partition INTEGER NOT NULL,
    next_offset BIGINT NOT NULL,
    PRIMARY KEY (topic, kafka_partition)
);
CREATE TABLE IF NOT EXISTS rejected (
    topic VARCHAR NOT NULL,
    kafka_partition INTEGER NOT NULL,
    kafka_offset BIGINT NOT NULL,
    reason VARCHAR NOT NULL,
    message VARCHAR NOT NULL,
    PRIMARY KEY (topic, kafka_partition, kafka_offset)
);
CREATE OR REPLACE VIEW hourly_compliance AS
SELECT
    camera_id,
    date_trunc('hour', captured_at) AS hour_utc,
    count(*) AS frames,
    count(*) FILTER (WHERE status = 'skipped') AS skipped,
    sum(faces) AS faces,
    sum(with_mask) AS with_mask,
    sum(without_mask) AS without_mask,
    sum(with_mask) / nullif(sum(faces), 0) AS compliance
FROM results
GROUP BY camera_id, hour_utc;
"""

FIGURES_24H_SQL = """
-- The aggregator's 24 h window (what the API shows): the 24 UTC hour buckets ending with the
-- current one, a result counted in the hour of min(captured_at, now).
SELECT
    camera_id,
    count(*) AS frames,
    count(*) FILTER (WHERE status = 'skipped') AS skipped,
    sum(faces) AS faces,
    sum(with_mask) AS with_mask,
    sum(without_mask) AS without_mask,
    sum(with_mask) / nullif(sum(faces), 0) AS compliance
FROM results
WHERE date_trunc('hour', least(captured_at, $now::TIMESTAMP))
      >= date_trunc('hour', $now::TIMESTAMP) - INTERVAL 23 HOUR
GROUP BY camera_id
ORDER BY camera_id
"""

RESULT_TYPES = (
    "VARCHAR", "BIGINT", "TIMESTAMP", "TIMESTAMP", "VARCHAR", "VARCHAR", "INTEGER", "INTEGER",
    "INTEGER", "VARCHAR", "VARCHAR", "INTEGER", "INTEGER", "BIGINT",
)  # fmt: skip
REJECTED_TYPES = ("VARCHAR", "INTEGER", "BIGINT", "VARCHAR", "VARCHAR")
OFFSET_TYPES = ("VARCHAR", "INTEGER", "BIGINT")


def insert_sql(verb: str, table: str, types: Sequence[str]) -> str:
    """One statement for many rows: each column a list parameter, unnested side by side.
    executemany runs one statement per row: 30-70x slower (bench_duckdb_sink.py)."""
    columns = ", ".join(f"unnest(${i}::{t}[])" for i, t in enumerate(types, start=1))
    return f"{verb} INTO {table} SELECT {columns}"


INSERT_RESULTS_SQL = insert_sql("INSERT OR IGNORE", "results", RESULT_TYPES)
INSERT_REJECTED_SQL = insert_sql("INSERT OR IGNORE", "rejected", REJECTED_TYPES)
STORE_OFFSETS_SQL = insert_sql("INSERT OR REPLACE", "kafka_offsets", OFFSET_TYPES)


class SinkConfig(BaseModel):
    """What the sink reads and where it writes (the Kafka names are the services' own)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    db: Path
    bootstrap_servers: str = Field(min_length=1)
    topic: str = Field(min_length=1)
    batch_max: int = Field(500, ge=1, le=100_000, description="Records per transaction.")
    exit_at_end: bool = False


def utc_naive(moment: datetime) -> datetime:
    """A UTC TIMESTAMP value (DuckDB would apply its session zone to an aware one)."""
    return moment.astimezone(UTC).replace(tzinfo=None)


def open_db(path: Path) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(str(path))
    con.execute(SCHEMA_SQL)
    return con


def stored_offsets(con: duckdb.DuckDBPyConnection, topic: str) -> dict[int, int]:
    rows = con.execute(
        "SELECT kafka_partition, next_offset FROM kafka_offsets WHERE topic = ?", [topic]
    ).fetchall()
    return {int(p): int(o) for p, o in rows}


def result_row(result: FrameResult, partition: int, offset: int) -> tuple[Any, ...]:
    return (
        result.camera_id,
        result.seq,
        utc_naive(result.captured_at),
        utc_naive(result.processed_at),
        result.status,
        result.skip_reason.value if result.skip_reason else None,
        result.counts.faces,
        result.counts.with_mask,
        result.counts.without_mask,
        f"{result.detector.name}:{result.detector.version}",
        f"{result.classifier.name}:{result.classifier.version}",
        result.schema_version,
        partition,
        offset,
    )


def write_batch(con: duckdb.DuckDBPyConnection, topic: str, records: Sequence[Any]) -> int:
    """Rows, rejects and next offsets of one batch in one transaction; returns rows added."""
    rows: list[tuple[Any, ...]] = []
    rejects: list[tuple[str, int, int, str, str]] = []
    next_offsets: dict[int, int] = {}
    for record in records:
        next_offsets[record.partition] = max(
            next_offsets.get(record.partition, 0), record.offset + 1
        )
        try:
            result = decode(FrameResult, record.value or b"", SUPPORTED_RESULT_VERSIONS)
        except SchemaError as error:
            rejects.append(
                (topic, record.partition, record.offset, error.code.value, error.message)
            )
            continue
        rows.append(result_row(result, record.partition, record.offset))
    before = _count(con)
    con.begin()
    try:
        _insert(con, INSERT_RESULTS_SQL, rows)
        _insert(con, INSERT_REJECTED_SQL, rejects)
        _insert(con, STORE_OFFSETS_SQL, [(topic, p, o) for p, o in sorted(next_offsets.items())])
        con.commit()
    except BaseException:
        con.rollback()
        raise
    return _count(con) - before


def _insert(con: duckdb.DuckDBPyConnection, sql: str, rows: Sequence[tuple[Any, ...]]) -> None:
    if rows:
        con.execute(sql, [list(column) for column in zip(*rows, strict=True)])


def _count(con: duckdb.DuckDBPyConnection) -> int:
    row = con.execute("SELECT count(*) FROM results").fetchone()
    return int(row[0]) if row else 0


def figures_24h(con: duckdb.DuckDBPyConnection, now: datetime) -> list[dict[str, Any]]:
    """Per camera, the counts and compliance of the aggregator's 24 h window at `now`."""
    cursor = con.execute(FIGURES_24H_SQL, {"now": utc_naive(now)})
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _say(**fields: Any) -> None:
    print(json.dumps(fields, sort_keys=True), flush=True)


def _positioned(config: SinkConfig, con: duckdb.DuckDBPyConnection) -> KafkaConsumer:
    """A consumer outside any group, at the offsets stored in the database (else earliest)."""
    consumer = KafkaConsumer(
        bootstrap_servers=config.bootstrap_servers.split(","),
        client_id="maskwatch-duckdb-sink",
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=config.batch_max,
    )
    numbers = consumer.partitions_for_topic(config.topic)
    if not numbers:
        raise SystemExit(f"topic {config.topic!r} does not exist")
    partitions = [TopicPartition(config.topic, n) for n in sorted(numbers)]
    consumer.assign(partitions)
    stored = stored_offsets(con, config.topic)
    for tp in partitions:
        if tp.partition in stored:
            consumer.seek(tp, stored[tp.partition])
        else:
            consumer.seek_to_beginning(tp)
    _say(resume={str(p): o for p, o in sorted(stored.items())})
    return consumer


def _caught_up(consumer: KafkaConsumer, partitions: Iterable[TopicPartition]) -> bool:
    ends = consumer.end_offsets(list(partitions))
    return all(consumer.position(tp) >= end for tp, end in ends.items())


def consume(config: SinkConfig) -> None:
    con = open_db(config.db)
    consumer = _positioned(config, con)
    try:
        while True:
            batches = consumer.poll(timeout_ms=1000, max_records=config.batch_max)
            records = [r for batch in batches.values() for r in batch]
            if records:
                added = write_batch(con, config.topic, records)
                offsets = stored_offsets(con, config.topic)
                _say(
                    records=len(records),
                    added=added,
                    offsets={str(p): o for p, o in offsets.items()},
                )
            elif config.exit_at_end and _caught_up(consumer, consumer.assignment()):
                _say(done=True, rows=_count(con))
                return
    finally:
        consumer.close()
        con.close()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=["consume", "report"])
    parser.add_argument("--db", type=Path, required=True, help="DuckDB database file.")
    parser.add_argument(
        "--bootstrap-servers",
        default=os.environ.get("MASKWATCH_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
        help="[env: MASKWATCH_KAFKA_BOOTSTRAP_SERVERS]",
    )
    parser.add_argument(
        "--topic",
        default=os.environ.get("MASKWATCH_KAFKA_RESULTS_TOPIC", "maskwatch.results"),
        help="[env: MASKWATCH_KAFKA_RESULTS_TOPIC]",
    )
    parser.add_argument("--batch-max", type=int, default=500, help="Records per transaction.")
    parser.add_argument("--exit-at-end", action="store_true", help="Exit once caught up.")
    args = parser.parse_args(argv)
    config = SinkConfig(
        db=args.db,
        bootstrap_servers=args.bootstrap_servers,
        topic=args.topic,
        batch_max=args.batch_max,
        exit_at_end=args.exit_at_end,
    )
    if args.command == "consume":
        consume(config)
        return
    with duckdb.connect(str(config.db), read_only=True) as con:
        for row in figures_24h(con, datetime.now(UTC)):
            print(json.dumps(row, default=str))


if __name__ == "__main__":
    main()
