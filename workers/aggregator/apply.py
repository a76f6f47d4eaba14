"""Writing to Redis: one atomic, idempotent Lua script per frame result, and alert transitions.

Why a script: the dedupe check, every counter, the latest summary and the registry must
change together or not at all. If the aggregator dies between two commands, a redelivered
result must find either nothing applied (apply it) or everything applied (skip it); a
script is atomic in Redis, a sequence of commands is not.

Replays are no-ops with bounded memory (the guarantee is written out in the README's
delivery section): per camera, an applied high-water mark (the newest 10 s capture-time
block applied, `Keys.applied`) and, for the `window_s` of capture time below it, one dedupe
entry per applied (camera, seq) in a hash per block (`dedupe_slot`). A result inside the
window is applied at most once (its entry is checked and set atomically with the counters);
a result older than the window is refused as `late` (applied never, so never twice). Blocks
leave the window only when the mark moves past them, never by wall-clock expiry, so an idle
camera's replay is still recognised; all of a camera's keys expire together `camera_ttl_s`
after its last write.

A batch of results goes in one pipeline (one round trip); each script stays atomic.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from redis import Redis

from schemas.alert import AlertEvent
from schemas.redis_state import SEEN_BLOCK_US, FrameSummary, Keys, dedupe_slot, live_buckets
from schemas.result import FrameResult

APPLY_LUA = """
-- KEYS: 1 seen block, 2 latest, 3 camera totals, 4 registry, 5 totals, 6 applied mark,
--       7 labels, 8.. bucket keys
-- ARGV: 1 dedupe field, 2 window blocks, 3 camera, 4 capture ms, 5 skipped, 6 faces,
--       7 with_mask, 8 without_mask, 9 summary json, 10 camera ttl, 11 block,
--       12 seen key prefix, 13 labels json, 14.. expire-at per bucket key
-- Returns 1 applied, 0 duplicate, 2 late (older than the window below the mark).
local block, window = tonumber(ARGV[11]), tonumber(ARGV[2])
local mark = tonumber(redis.call('GET', KEYS[6]) or '')
if mark and block < mark - window then return 2 end
if redis.call('HSETNX', KEYS[1], ARGV[1], 1) == 0 then return 0 end
redis.call('EXPIRE', KEYS[1], ARGV[10])
if not mark or block > mark then
  if mark then
    for b = mark - window, math.min(block - window - 1, mark) do
      redis.call('DEL', ARGV[12] .. b)
    end
  end
  redis.call('SET', KEYS[6], ARGV[11])
end
redis.call('EXPIRE', KEYS[6], ARGV[10])
local counts = {faces = ARGV[6], with_mask = ARGV[7], without_mask = ARGV[8]}
local function add(key)
  redis.call('HINCRBY', key, 'frames', 1)
  if ARGV[5] == '1' then
    redis.call('HINCRBY', key, 'skipped', 1)
    return
  end
  for field, value in pairs(counts) do
    if value ~= '0' then redis.call('HINCRBY', key, field, value) end
  end
end
add(KEYS[3])
redis.call('EXPIRE', KEYS[3], ARGV[10])
add(KEYS[5])
for i = 8, #KEYS do
  add(KEYS[i])
  redis.call('EXPIREAT', KEYS[i], ARGV[i + 6])
end
local newest = tonumber(redis.call('HGET', KEYS[2], 'ms') or '-1')
if tonumber(ARGV[4]) >= newest then
  redis.call('HSET', KEYS[2], 'ms', ARGV[4], 'json', ARGV[9])
  redis.call('DEL', KEYS[7])
  for name, value in pairs(cjson.decode(ARGV[13])) do
    redis.call('HSET', KEYS[7], name, value)
  end
end
redis.call('EXPIRE', KEYS[2], ARGV[10])
redis.call('EXPIRE', KEYS[7], ARGV[10])
redis.call('ZADD', KEYS[4], 'GT', ARGV[4], ARGV[3])
return 1
"""

TRANSITION_LUA = """
-- Compare-and-set of one camera's alert rule, so that of several aggregators evaluating
-- the same camera only one records (and then publishes) the transition.
-- KEYS: 1 alert state hash, 2 alerts list, 3 updates channel, 4 outbox hash
-- ARGV: 1 rule, 2 expected state, 3 new state, 4 now, 5 value, 6 event json, 7 list cap,
--       8 camera ttl, 9 outbox id
local current = redis.call('HGET', KEYS[1], ARGV[1] .. ':state') or 'ok'
if current ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1] .. ':state', ARGV[3], ARGV[1] .. ':since', ARGV[4],
  ARGV[1] .. ':value', ARGV[5])
if ARGV[3] == 'firing' then redis.call('HSET', KEYS[1], ARGV[1] .. ':fired_at', ARGV[4]) end
redis.call('EXPIRE', KEYS[1], ARGV[8])
redis.call('LPUSH', KEYS[2], ARGV[6])
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[7]) - 1)
redis.call('PUBLISH', KEYS[3], '{"alert":' .. ARGV[6] .. '}')
redis.call('HSET', KEYS[4], ARGV[9], ARGV[6])
return 1
"""


def outbox_id(event: AlertEvent) -> str:
    """An alert event's outbox field: its time first, so the age of an entry is readable."""
    return f"{event.at.timestamp():.6f}|{event.camera_id}|{event.rule}|{event.state}"


def outbox_age_s(event_id: str, now: float) -> float:
    """How long ago the event of an outbox field was recorded."""
    return now - float(event_id.split("|", 1)[0])


@dataclass(frozen=True)
class ApplyOutcome:
    """What a batch did: how many results were new, replays, late; which cameras changed."""

    applied: int
    duplicates: int
    cameras: frozenset[str]
    late: int = 0
    """Results older than the dedupe window below their camera's mark: refused."""


class Applier:
    """Folds frame results into Redis (see the module doc)."""

    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        window_s: int,
        camera_ttl_s: int,
        alerts_cap: int = 500,
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.window_blocks = -(-window_s * 1_000_000 // SEEN_BLOCK_US)
        self.camera_ttl_s = camera_ttl_s
        self.alerts_cap = alerts_cap
        self._apply = redis.register_script(APPLY_LUA)
        self._transition = redis.register_script(TRANSITION_LUA)

    def apply_batch(self, results: Sequence[FrameResult], now: float) -> ApplyOutcome:
        """Apply results in one round trip; returns once Redis has confirmed every one."""
        if not results:
            return ApplyOutcome(0, 0, frozenset())
        pipe = self.redis.pipeline(transaction=False)
        for result in results:
            keys, args = self._call(result, now)
            self._apply(keys=keys, args=args, client=pipe)
        replies = pipe.execute()
        changed = frozenset(r.camera_id for r, n in zip(results, replies, strict=True) if n == 1)
        applied = sum(1 for n in replies if n == 1)
        late = sum(1 for n in replies if n == 2)
        if changed:
            self.redis.publish(self.keys.updates, json.dumps({"cameras": sorted(changed)}))
        return ApplyOutcome(applied, len(results) - applied - late, changed, late)

    def _call(self, result: FrameResult, now: float) -> tuple[list[str], list[str | int]]:
        k, camera = self.keys, result.camera_id
        captured = result.captured_at.timestamp()
        plan = live_buckets(captured, now)
        scopes = (camera, None)
        bucket_keys = [k.bucket(scope, res, start) for res, start, _ in plan for scope in scopes]
        expiries = [expire_at for _, _, expire_at in plan for _ in scopes]
        counts = result.counts
        block, field = dedupe_slot(result.captured_at, result.seq)
        keys = [
            k.seen(camera, block),
            k.latest(camera),
            k.camera_totals(camera),
            k.registry,
            k.totals,
            k.applied(camera),
            k.labels(camera),
            *bucket_keys,
        ]
        args: list[str | int] = [
            field,
            self.window_blocks,
            camera,
            int(min(captured, now) * 1000),
            1 if result.status == "skipped" else 0,
            counts.faces,
            counts.with_mask,
            counts.without_mask,
            FrameSummary.of(result).model_dump_json(),
            self.camera_ttl_s,
            block,
            k.seen_prefix(camera),
            json.dumps(result.labels),
            *expiries,
        ]
        return keys, args

    def transition(
        self,
        camera: str,
        rule: str,
        expected: str,
        new: str,
        now: float,
        value: float | None,
        event_json: str,
        event_id: str,
    ) -> bool:
        """Record an alert rule's change of state if it is still `expected`; True if we did."""
        k = self.keys
        done = self._transition(
            keys=[k.alert_state(camera), k.alerts, k.updates, k.alert_outbox],
            args=[
                rule,
                expected,
                new,
                now,
                "" if value is None else value,
                event_json,
                self.alerts_cap,
                self.camera_ttl_s,
                event_id,
            ],
        )
        return bool(done)

    def outbox(self) -> dict[str, str]:
        """Alert events recorded but not yet acknowledged by Kafka: id → event JSON."""
        pending: dict[str, str] = self.redis.hgetall(self.keys.alert_outbox)  # type: ignore[assignment]
        return pending

    def outbox_done(self, ids: Sequence[str]) -> None:
        """Forget events Kafka acknowledged."""
        if ids:
            self.redis.hdel(self.keys.alert_outbox, *ids)

    def prune_registry(self, now: float) -> int:
        """Forget cameras not seen for `camera_ttl_s` (their own keys have expired too)."""
        cutoff = int((now - self.camera_ttl_s) * 1000)
        removed: int = self.redis.zremrangebyscore(self.keys.registry, "-inf", cutoff)
        return removed
