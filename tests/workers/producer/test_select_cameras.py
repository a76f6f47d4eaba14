"""`select_cameras`: what each producer replica reads, from the cameras file and its pod name."""

from __future__ import annotations

import click
import pytest

from workers.producer.main import ProducerSettings, select_cameras
from workers.producer.sharding import replica_for


def cameras_yaml(count: int, disabled: set[int]) -> str:
    lines = ["cameras:"]
    for i in range(count):
        lines += [f"  - id: cam-{i:02d}", "    source: folder:/nonexistent/frames"]
        if i in disabled:
            lines.append("    enabled: false")
    return "\n".join(lines) + "\n"


def selected(text: str, replicas: int, pod: str) -> tuple[int, list[str]]:
    settings = ProducerSettings(cameras_yaml=text, replica_count=replicas, pod_name=pod)
    index, cameras = select_cameras(settings)
    return index, [c.id for c in cameras]


def test_replicas_split_the_enabled_cameras_without_overlap_or_gap() -> None:
    disabled = {3, 7, 11}
    text = cameras_yaml(30, disabled)
    enabled = [f"cam-{i:02d}" for i in range(30) if i not in disabled]
    shares = {}
    for ordinal in range(3):
        index, ids = selected(text, 3, f"maskwatch-producer-{ordinal}")
        assert index == ordinal  # the StatefulSet ordinal of the pod name
        assert all(replica_for(c, 3) == ordinal for c in ids)
        shares[ordinal] = ids
    assert sorted(c for ids in shares.values() for c in ids) == enabled  # each exactly once
    assert all(shares.values()), shares  # 27 cameras over 3 replicas: none left idle


def test_one_replica_reads_every_enabled_camera_in_file_order() -> None:
    text = cameras_yaml(5, {1})
    assert selected(text, 1, "any-name") == (0, ["cam-00", "cam-02", "cam-03", "cam-04"])


@pytest.mark.parametrize(
    ("text", "replicas", "pod", "says"),
    [
        (cameras_yaml(4, set()), 3, "producer", "no StatefulSet ordinal"),
        (cameras_yaml(4, set()), 3, "producer-3", "outside 0..2"),
        ("cameras: [", 1, "p-0", "not valid YAML"),
        ("cameras:\n  - id: bad id!\n    source: folder:/x\n", 1, "p-0", "id"),
    ],
)
def test_bad_config_or_replica_is_a_usage_error(
    text: str, replicas: int, pod: str, says: str
) -> None:
    with pytest.raises(click.ClickException) as error:
        selected(text, replicas, pod)
    assert says in error.value.message
