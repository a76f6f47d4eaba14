"""How many CPUs this process may use: its affinity mask, capped by a cgroup CPU limit.

Thread pools sized to the node (ONNX Runtime's and TensorFlow's defaults) oversubscribe a
container with a CPU limit: the threads then queue for quota and a worker spends more
core-seconds per frame, not fewer. Every thread pool here is sized with `cpu_share()`.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_V2_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def cgroup_cpu_limit(cpu_max: Path = CGROUP_V2_CPU_MAX) -> float | None:
    """The cgroup v2 limit in CPUs (`quota period` in cpu.max), or None when unlimited."""
    try:
        quota, period = cpu_max.read_text().split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    return int(quota) / int(period)


def cpu_share(cpu_max: Path = CGROUP_V2_CPU_MAX) -> int:
    """CPUs to size a compute thread pool with (at least 1)."""
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    available = affinity or 1
    limit = cgroup_cpu_limit(cpu_max)
    if limit is not None:
        available = min(available, math.ceil(limit))
    return max(1, available)
