"""Alert rules as pure functions: state in, transition (an AlertEvent) or nothing out.

Two rules per camera:
- `low_compliance`: fires when the compliance over a window is below `compliance_below`
  with at least `min_faces` faces; resolves only once it is back at or above
  `compliance_below + hysteresis` (again with at least `min_faces`), so a camera hovering
  at the threshold does not flap. Too few faces is no evidence either way: no change.
- `camera_silent`: fires when nothing was captured for more than `silent_after_s`;
  resolves when a newer capture arrives.

Cooldown: a rule that fired does not fire again for the same camera within `cooldown_s`
of its previous firing, however often it resolves in between.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from schemas.alert import AlertEvent
from schemas.redis_state import Counters, RuleState, WindowName

EPSILON = 1e-9
"""Float slack so that 85/100 counts as reaching 0.8 + 0.05."""


@dataclass(frozen=True)
class AlertRules:
    """Thresholds of both rules (from the aggregator's settings)."""

    compliance_below: float
    hysteresis: float
    min_faces: int
    window: WindowName
    window_s: int
    silent_after_s: float
    cooldown_s: float


def _cooled(prev: RuleState, rules: AlertRules, now: float) -> bool:
    return prev.fired_at is None or now - prev.fired_at >= rules.cooldown_s


def _at(now: float) -> datetime:
    return datetime.fromtimestamp(now, UTC)


def evaluate_compliance(
    camera: str, window: Counters, prev: RuleState, rules: AlertRules, now: float
) -> AlertEvent | None:
    """The low-compliance transition for `camera`, if any."""
    ratio = window.compliance
    if ratio is None or window.faces < rules.min_faces:
        return None
    pct, limit = round(ratio * 100, 1), rules.compliance_below
    state: Literal["firing", "resolved"]
    if prev.state == "ok" and ratio < limit and _cooled(prev, rules, now):
        state = "firing"
        message = (
            f"{camera}: {pct}% of {window.faces} faces masked over {rules.window}, "
            f"below {limit * 100:.0f}%"
        )
    elif prev.state == "firing" and ratio >= limit + rules.hysteresis - EPSILON:
        state = "resolved"
        message = f"{camera}: compliance back to {pct}% over {rules.window}"
    else:
        return None
    return AlertEvent(
        camera_id=camera,
        rule="low_compliance",
        state=state,
        value=ratio,
        threshold=limit,
        window_s=rules.window_s,
        at=_at(now),
        message=message,
    )


def evaluate_silence(
    camera: str, last_seen: float | None, prev: RuleState, rules: AlertRules, now: float
) -> AlertEvent | None:
    """The camera-silent transition for `camera`, if any (`last_seen` in epoch seconds)."""
    if last_seen is None:
        return None
    silence = max(0.0, now - last_seen)
    silent = silence > rules.silent_after_s
    if prev.state == "ok" and silent and _cooled(prev, rules, now):
        message = f"{camera}: nothing captured for {silence:.0f}s"
        state: Literal["firing", "resolved"] = "firing"
    elif prev.state == "firing" and not silent:
        message = f"{camera}: frames arriving again"
        state = "resolved"
    else:
        return None
    return AlertEvent(
        camera_id=camera,
        rule="camera_silent",
        state=state,
        value=round(silence, 3),
        threshold=rules.silent_after_s,
        at=_at(now),
        message=message,
    )
