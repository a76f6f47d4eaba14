"""Results -> DuckDB with offsets in the same transaction (see sink.py and README.md)."""
