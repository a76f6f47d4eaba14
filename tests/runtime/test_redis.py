"""Redis against the real local server: values, hashes, expiry and a transaction round-trip."""

from __future__ import annotations

import pytest
import redis

pytestmark = pytest.mark.integration


def test_round_trip(redis_client: redis.Redis, redis_prefix: str) -> None:
    key, counts = f"{redis_prefix}frame", f"{redis_prefix}counts"
    payload = bytes(range(256))
    assert redis_client.set(key, payload, ex=60)
    assert redis_client.get(key) == payload
    assert 0 < redis_client.ttl(key) <= 60

    with redis_client.pipeline(transaction=True) as pipe:
        pipe.hincrby(counts, "faces", 3)
        pipe.hincrby(counts, "with_mask", 2)
        pipe.expire(counts, 60)
        assert pipe.execute() == [3, 2, True]
    assert redis_client.hgetall(counts) == {b"faces": b"3", b"with_mask": b"2"}


def test_server_is_loopback_without_persistence(redis_client: redis.Redis) -> None:
    config = redis_client.config_get("*")
    assert str(config["bind"]).split()[0] == "127.0.0.1"
    assert config["save"] == ""
    assert config["appendonly"] == "no"
