"""Tools for downstream consumers of the topics: read-only readers, never a pipeline stage.

`maskwatch results tail|export` (consumers/results.py); the consumer guide is
docs/CONSUMERS.md.
"""
