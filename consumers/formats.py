"""How `maskwatch results` writes results: a human line, JSON lines, or flat rows (CSV, Parquet).

JSON lines are the values exactly as the topic carries them (fields of newer compatible
writers included). CSV and Parquet are one flat row per frame (`ROW_FIELDS`): the counts,
not the boxes; use JSON lines when the faces are needed.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from consumers.reader import Read
from schemas.result import FrameResult

ROW_FIELDS = (
    "camera_id",
    "seq",
    "captured_at",
    "processed_at",
    "status",
    "skip_reason",
    "faces",
    "with_mask",
    "without_mask",
    "detector",
    "detector_version",
    "classifier",
    "classifier_version",
    "worker_id",
    "total_ms",
    "schema_version",
    "partition",
    "offset",
)


def _time(moment: datetime, timespec: str = "milliseconds") -> str:
    return moment.astimezone(UTC).isoformat(timespec=timespec).replace("+00:00", "Z")


def human_line(read: Read) -> str:
    """One readable line: when, which camera and frame, and what was counted."""
    where = f"p{read.partition}@{read.offset}"
    result = read.result
    if result is None:
        reason = read.error.code.value if read.error else "unknown"
        return f"{where} undecodable ({reason}): {read.error.message if read.error else ''}"
    head = f"{_time(result.captured_at)} {result.camera_id} seq={result.seq}"
    if result.status == "skipped":
        reason = result.skip_reason.value if result.skip_reason else ""
        return f"{head} skipped ({reason}) {where}"
    counts = result.counts
    share = f"{counts.with_mask / counts.faces:.0%}" if counts.faces else "-"
    return (
        f"{head} faces={counts.faces} with_mask={counts.with_mask} "
        f"without_mask={counts.without_mask} compliance={share} {where}"
    )


def json_line(read: Read) -> str:
    """The record's value as the topic carries it, on one line."""
    return read.value.decode("utf-8", "replace").strip()


def write_json_lines(reads: Iterable[Read], out: IO[str]) -> int:
    """One value per line; returns the number of lines written."""
    count = 0
    for read in reads:
        out.write(json_line(read) + "\n")
        count += 1
    return count


def row(read: Read, result: FrameResult) -> dict[str, Any]:
    """The flat row of one result (`ROW_FIELDS`); times stay datetimes (UTC)."""
    return {
        "camera_id": result.camera_id,
        "seq": result.seq,
        "captured_at": result.captured_at,
        "processed_at": result.processed_at,
        "status": result.status,
        "skip_reason": result.skip_reason.value if result.skip_reason else None,
        "faces": result.counts.faces,
        "with_mask": result.counts.with_mask,
        "without_mask": result.counts.without_mask,
        "detector": result.detector.name,
        "detector_version": result.detector.version,
        "classifier": result.classifier.name,
        "classifier_version": result.classifier.version,
        "worker_id": result.worker_id,
        "total_ms": result.timings_ms.total_ms,
        "schema_version": result.schema_version,
        "partition": read.partition,
        "offset": read.offset,
    }


def write_csv(rows: Iterable[dict[str, Any]], out: IO[str]) -> int:
    """CSV with a header line, times as RFC 3339 UTC with microseconds; returns the row count."""
    writer = csv.DictWriter(out, fieldnames=ROW_FIELDS, lineterminator="\n")
    writer.writeheader()
    count = 0
    for values in rows:
        writer.writerow(
            {
                k: _time(v, "microseconds") if isinstance(v, datetime) else v
                for k, v in values.items()
            }
        )
        count += 1
    return count


def write_parquet(rows: Iterable[dict[str, Any]], path: Path) -> int:
    """A Parquet file (needs the optional `pyarrow`: `pip install maskwatch[parquet]`)."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as error:
        raise RuntimeError("Parquet needs pyarrow: pip install 'maskwatch[parquet]'") from error
    schema = pa.schema(
        [
            ("camera_id", pa.string()),
            ("seq", pa.int64()),
            ("captured_at", pa.timestamp("us", tz="UTC")),
            ("processed_at", pa.timestamp("us", tz="UTC")),
            ("status", pa.string()),
            ("skip_reason", pa.string()),
            ("faces", pa.int32()),
            ("with_mask", pa.int32()),
            ("without_mask", pa.int32()),
            ("detector", pa.string()),
            ("detector_version", pa.string()),
            ("classifier", pa.string()),
            ("classifier_version", pa.string()),
            ("worker_id", pa.string()),
            ("total_ms", pa.float64()),
            ("schema_version", pa.int32()),
            ("partition", pa.int32()),
            ("offset", pa.int64()),
        ]
    )
    columns: dict[str, list[Any]] = {name: [] for name in ROW_FIELDS}
    for values in rows:
        for name in ROW_FIELDS:
            columns[name].append(values[name])
    table = pa.table(columns, schema=schema)
    pq.write_table(table, path)
    return int(table.num_rows)
