"""Output formats of `maskwatch results`: human lines, raw JSON lines, flat CSV / Parquet rows."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.parquet as pq

from consumers import formats
from consumers.reader import Read, decode_record
from schemas.common import DeadLetterReason, encode
from workers.aggregator.synthetic import result

CAPTURED = datetime(2026, 12, 1, 9, 30, 0, 123456, tzinfo=UTC)


class Record:
    """The ConsumerRecord fields decode_record reads."""

    def __init__(self, value: bytes, partition: int = 2, offset: int = 7) -> None:
        self.value, self.partition, self.offset, self.timestamp = value, partition, offset, 0


def read_of(value: bytes) -> Read:
    return decode_record(Record(value))


def test_human_line_of_a_processed_result() -> None:
    line = formats.human_line(read_of(encode(result("cam-a", 5, CAPTURED, masked=3, unmasked=1))))
    assert line == (
        "2026-12-01T09:30:00.123Z cam-a seq=5 faces=4 with_mask=3 without_mask=1 "
        "compliance=75% p2@7"
    )


def test_human_line_of_skipped_and_undecodable_records() -> None:
    skipped = formats.human_line(read_of(encode(result("cam-a", 6, CAPTURED, skipped=True))))
    assert skipped == "2026-12-01T09:30:00.123Z cam-a seq=6 skipped (too_old) p2@7"
    bad = read_of(b'{"schema_version": 9}')
    assert bad.result is None and bad.error is not None
    assert bad.error.code is DeadLetterReason.UNSUPPORTED_SCHEMA_VERSION
    assert formats.human_line(bad).startswith("p2@7 undecodable (unsupported_schema_version)")


def test_json_line_is_the_value_as_the_topic_carries_it() -> None:
    value = encode(result("cam-a", 5, CAPTURED, masked=1))
    newer = value[:-1] + b',"added_later":1}'  # a compatible writer's extra field survives
    assert formats.json_line(read_of(newer)) == newer.decode()


def test_csv_rows_are_flat_with_exact_times() -> None:
    reads = [read_of(encode(result("cam-a", s, CAPTURED, masked=s, unmasked=1))) for s in (1, 2)]
    out = io.StringIO()
    rows = [formats.row(r, r.result) for r in reads if r.result is not None]
    assert formats.write_csv(rows, out) == 2
    parsed = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert list(parsed[0]) == list(formats.ROW_FIELDS)
    assert parsed[1]["captured_at"] == "2026-12-01T09:30:00.123456Z"
    assert (parsed[1]["faces"], parsed[1]["with_mask"], parsed[1]["skip_reason"]) == ("3", "2", "")


def test_parquet_round_trip(tmp_path: Path) -> None:
    reads = [read_of(encode(result("cam-a", 1, CAPTURED, skipped=True)))]
    rows = [formats.row(r, r.result) for r in reads if r.result is not None]
    assert formats.write_parquet(rows, tmp_path / "r.parquet") == 1
    table = pq.read_table(tmp_path / "r.parquet").to_pylist()
    assert table[0]["captured_at"] == CAPTURED
    assert (table[0]["status"], table[0]["skip_reason"], table[0]["offset"]) == (
        "skipped",
        "too_old",
        7,
    )
