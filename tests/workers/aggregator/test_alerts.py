"""Alert rules (pure): thresholds, minimum faces, hysteresis, cooldown, silence."""

from __future__ import annotations

import pytest

from schemas.redis_state import Counters, RuleState, rule_state
from workers.aggregator.alerts import (
    AlertRules,
    evaluate_compliance,
    evaluate_silence,
)
from workers.aggregator.settings import AggregatorSettings

RULES = AlertRules(
    compliance_below=0.8,
    hysteresis=0.05,
    min_faces=20,
    window="15m",
    window_s=900,
    silent_after_s=60,
    cooldown_s=300,
)
NOW = 1_800_000_000.0
OK = RuleState()
FIRING = RuleState("firing", since=NOW - 10, fired_at=NOW - 10)


def faces(masked: int, unmasked: int) -> Counters:
    return Counters(frames=1, faces=masked + unmasked, with_mask=masked, without_mask=unmasked)


def test_low_compliance_fires_below_threshold_with_enough_faces() -> None:
    event = evaluate_compliance("cam", faces(15, 10), OK, RULES, NOW)
    assert event is not None and event.state == "firing" and event.rule == "low_compliance"
    assert event.value == 0.6 and event.threshold == 0.8 and event.window_s == 900


def test_too_few_faces_is_no_evidence() -> None:
    assert evaluate_compliance("cam", faces(1, 18), OK, RULES, NOW) is None
    assert evaluate_compliance("cam", faces(19, 0), FIRING, RULES, NOW) is None
    assert evaluate_compliance("cam", Counters(frames=9, skipped=9), OK, RULES, NOW) is None


def test_hysteresis_keeps_firing_until_threshold_plus_margin() -> None:
    assert evaluate_compliance("cam", faces(82, 18), FIRING, RULES, NOW) is None  # 0.82 < 0.85
    resolved = evaluate_compliance("cam", faces(85, 15), FIRING, RULES, NOW)
    assert resolved is not None and resolved.state == "resolved"
    # no new firing while ok and at/above the threshold
    assert evaluate_compliance("cam", faces(80, 20), OK, RULES, NOW) is None


def test_cooldown_blocks_refiring_soon_after_a_firing() -> None:
    recently = RuleState("ok", since=NOW - 5, fired_at=NOW - 100)
    assert evaluate_compliance("cam", faces(10, 90), recently, RULES, NOW) is None
    assert evaluate_compliance("cam", faces(10, 90), recently, RULES, NOW + 200) is not None


def test_silence_fires_after_threshold_and_resolves_on_new_frames() -> None:
    assert evaluate_silence("cam", NOW - 30, OK, RULES, NOW) is None
    fired = evaluate_silence("cam", NOW - 61, OK, RULES, NOW)
    assert fired is not None and fired.state == "firing" and fired.value == 61.0
    assert evaluate_silence("cam", NOW - 120, FIRING, RULES, NOW) is None
    back = evaluate_silence("cam", NOW - 1, FIRING, RULES, NOW)
    assert back is not None and back.state == "resolved"


def test_rule_state_parses_the_alert_hash() -> None:
    fields = {
        "low_compliance:state": "firing",
        "low_compliance:since": "12.5",
        "low_compliance:fired_at": "12.5",
    }
    assert rule_state(fields, "low_compliance") == RuleState("firing", 12.5, 12.5)
    assert rule_state(fields, "camera_silent") == RuleState()


def test_camera_rules_come_from_json_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "MASKWATCH_AGGREGATOR_CAMERA_RULES",
        '{"gate": {"silent_after_s": 300, "alert_window": "24h"}}',
    )
    settings = AggregatorSettings(min_faces=7)
    gate, other = settings.alert_rules("gate"), settings.alert_rules("other")
    assert (gate.silent_after_s, gate.window, gate.window_s, gate.min_faces) == (
        300,
        "24h",
        86400,
        7,
    )
    assert (other.silent_after_s, other.window) == (60, "15m")
