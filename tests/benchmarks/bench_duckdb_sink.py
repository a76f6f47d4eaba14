"""Benchmark: rows per second the example DuckDB sink writes, by insert method and batch size.

    .venv/bin/python -m tests.benchmarks.bench_duckdb_sink [--rows 4000]

Each variant writes the same synthetic result rows into a fresh database file, one
transaction per batch (rows + offsets, as the sink does): `executemany` (one statement per
row) against the sink's column-wise `unnest` statement. No Kafka: the database side alone.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from examples.duckdb_sink.sink import (
    INSERT_RESULTS_SQL,
    STORE_OFFSETS_SQL,
    open_db,
    result_row,
)
from workers.aggregator.synthetic import stream

EXECUTEMANY_SQL = "INSERT OR IGNORE INTO results VALUES (" + ", ".join(["?"] * 14) + ")"


def rows_of(count: int) -> list[tuple[Any, ...]]:
    cameras = [f"cam-{i}" for i in range(10)]
    results = stream(cameras, count // len(cameras), time.time() - 3600)
    return [result_row(r, 0, offset) for offset, r in enumerate(results)]


def run(method: str, rows: list[tuple[Any, ...]], batch: int, folder: Path) -> float:
    con = open_db(folder / f"{method}-{batch}.duckdb")
    started = time.perf_counter()
    for start in range(0, len(rows), batch):
        chunk = rows[start : start + batch]
        con.begin()
        if method == "executemany":
            con.executemany(EXECUTEMANY_SQL, chunk)
        else:
            con.execute(INSERT_RESULTS_SQL, [list(column) for column in zip(*chunk, strict=True)])
        con.execute(STORE_OFFSETS_SQL, [["t"], [0], [start + len(chunk)]])
        con.commit()
    elapsed = time.perf_counter() - started
    con.close()
    return len(rows) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=4000)
    args = parser.parse_args()
    rows = rows_of(args.rows)
    print(f"{len(rows)} rows, one transaction per batch (rows + offsets)")
    print(f"{'batch':>6} {'executemany rows/s':>19} {'unnest rows/s':>14}")
    with tempfile.TemporaryDirectory() as tmp:
        for batch in (25, 100, 500):
            slow = run("executemany", rows[: min(len(rows), 1000)], batch, Path(tmp))
            fast = run("unnest", rows, batch, Path(tmp))
            print(f"{batch:>6} {slow:>19,.0f} {fast:>14,.0f}")


if __name__ == "__main__":
    main()
