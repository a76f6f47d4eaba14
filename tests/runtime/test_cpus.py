"""CPU share: affinity capped by a cgroup v2 limit."""

from __future__ import annotations

import os
from pathlib import Path

from runtime.cpus import cgroup_cpu_limit, cpu_share


def test_a_cgroup_limit_caps_the_share(tmp_path: Path) -> None:
    cpu_max = tmp_path / "cpu.max"
    cpu_max.write_text("150000 100000\n")
    assert cgroup_cpu_limit(cpu_max) == 1.5
    assert cpu_share(cpu_max) == min(2, len(os.sched_getaffinity(0)))
    cpu_max.write_text("50000 100000\n")
    assert cpu_share(cpu_max) == 1


def test_no_limit_means_the_affinity_mask(tmp_path: Path) -> None:
    cpu_max = tmp_path / "cpu.max"
    cpu_max.write_text("max 100000\n")
    assert cgroup_cpu_limit(cpu_max) is None
    assert cgroup_cpu_limit(tmp_path / "missing") is None
    assert cpu_share(cpu_max) == len(os.sched_getaffinity(0))
