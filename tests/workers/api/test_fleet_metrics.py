"""Label values beyond the cap are summed under `_other`, so label series stay bounded."""

from __future__ import annotations

from schemas.redis_state import Counters
from workers.api.fleet_metrics import OTHER, _capped
from workers.api.models import CameraReplies, CameraSummary, camera_summary, label_groups

NOW = 1_800_000_000.0


def cam(camera: str, site: str | None, faces: int) -> CameraSummary:
    labels = {} if site is None else {"site": site}
    short = [Counters(frames=1, faces=faces, with_mask=faces)]
    replies = CameraReplies(camera, NOW * 1000, None, {}, labels, [Counters()] * 60, short, [])
    return camera_summary(replies, NOW, 60.0)


def test_values_beyond_the_cap_go_to_other_and_keep_their_counts() -> None:
    cams = [cam("a", "big", 1), cam("b", "big", 2), cam("c", "small", 4), cam("d", "tiny", 8)]
    cams.append(cam("e", None, 16))
    capped = _capped("site", cams, max_values=1)
    groups = {g.value: g for g in label_groups("site", capped)}
    assert sorted(groups) == sorted(["big", OTHER])
    one_minute = {v: next(w for w in g.windows if w.window == "1m") for v, g in groups.items()}
    assert (groups["big"].cameras, one_minute["big"].faces) == (2, 3)
    assert (groups[OTHER].cameras, one_minute[OTHER].faces) == (2, 12)
    assert capped[4].labels == {}  # no site: in no group
