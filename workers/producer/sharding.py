"""Which producer replica reads which camera: rendezvous hashing of the camera id.

Every replica computes the same answer from the same inputs (camera id, replica count), so
each camera has exactly one producer without any coordination. Rendezvous (highest random
weight) hashing rather than `hash % count`: when the replica count changes, only the cameras
that must move do (about 1/count of them), so scaling the StatefulSet does not reshuffle
every camera's connection. The hash is BLAKE2b, stable across processes and Python versions
(the built-in `hash()` of a str is salted per process).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

_ORDINAL = re.compile(r"-(\d+)$")


class ShardingError(ValueError):
    """The replica index / count cannot be determined or is inconsistent."""


def _weight(camera_id: str, replica: int) -> int:
    digest = hashlib.blake2b(f"{camera_id}\x00{replica}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def replica_for(camera_id: str, replica_count: int) -> int:
    """The replica (0-based) that owns `camera_id` among `replica_count` replicas."""
    if replica_count < 1:
        raise ShardingError(f"replica count must be >= 1, got {replica_count}")
    return max(range(replica_count), key=lambda replica: _weight(camera_id, replica))


def owned(camera_ids: Iterable[str], replica_index: int, replica_count: int) -> list[str]:
    """The camera ids this replica reads, in their given order."""
    return [c for c in camera_ids if replica_for(c, replica_count) == replica_index]


def resolve_replica(index: int | None, count: int, pod_name: str | None) -> int:
    """This replica's index: given explicitly, else the StatefulSet ordinal of the pod name.

    A single replica is always index 0. With several replicas and no index, the pod name must
    end in `-N` (StatefulSet pods are named `<set>-<ordinal>`).
    """
    if count < 1:
        raise ShardingError(f"replica count must be >= 1, got {count}")
    if index is None:
        if count == 1:
            return 0
        match = _ORDINAL.search(pod_name or "")
        if match is None:
            raise ShardingError(
                f"{count} replicas but no replica index and pod name {pod_name!r} has no "
                "StatefulSet ordinal (-N suffix)"
            )
        index = int(match.group(1))
    if not 0 <= index < count:
        raise ShardingError(f"replica index {index} is outside 0..{count - 1}")
    return index
