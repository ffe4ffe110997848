"""RedisBackend details beyond the shared contract: layout, old chunks, namespaces, failures."""

from __future__ import annotations

import pytest
import redis

from tests.support.redis_server import RedisServer
from workbench.cache.redis_backend import CHUNK_GRACE_MS, RedisBackend, mask_url
from workbench.errors import CacheError

KEY = "0f" * 32


@pytest.fixture
def client(redis_url: str) -> redis.Redis:
    return redis.Redis.from_url(redis_url)


def chunks(client: redis.Redis, key: str = KEY, namespace: str = "workbench") -> list[bytes | str]:
    return sorted(client.keys(f"{namespace}:cache:chunk:{key}:*"))


def test_layout(redis_url: str, client: redis.Redis) -> None:
    backend = RedisBackend(redis_url, chunk_bytes=4)
    backend.put(KEY, b"tiny")
    assert client.get(f"workbench:cache:entry:{KEY}") == b"\x00tiny"
    backend.put(KEY, b"0123456789")
    assert client.get(f"workbench:cache:entry:{KEY}")[:1] == b"\x01"  # type: ignore[index]
    assert [client.get(k) for k in chunks(client)] == [b"0123", b"4567", b"89"]
    assert 0 < client.pttl(f"workbench:cache:entry:{KEY}") <= 7 * 24 * 3600 * 1000


@pytest.mark.parametrize("ttl_s", [60.0, None])
def test_an_overwrite_retires_the_old_chunks(
    redis_url: str, client: redis.Redis, ttl_s: float | None
) -> None:
    backend = RedisBackend(redis_url, chunk_bytes=4, ttl_s=ttl_s)
    backend.put(KEY, b"first write")
    old = chunks(client)
    backend.put(KEY, b"second write")
    assert all(0 < client.pttl(k) <= CHUNK_GRACE_MS for k in old)
    new = set(chunks(client)) - set(old)
    assert len(new) == 3
    ttls = [client.pttl(k) for k in new]
    assert all(t == -1 if ttl_s is None else CHUNK_GRACE_MS < t <= 60_000 for t in ttls)
    assert backend.get(KEY) == b"second write"


def test_delete_removes_the_chunks_at_once(redis_url: str, client: redis.Redis) -> None:
    backend = RedisBackend(redis_url, chunk_bytes=4)
    backend.put(KEY, b"0123456789")
    assert backend.delete(KEY)
    assert chunks(client) == []


def test_namespaces_are_separate(redis_url: str) -> None:
    one = RedisBackend(redis_url, namespace="one", chunk_bytes=4)
    two = RedisBackend(redis_url, namespace="two", chunk_bytes=4)
    one.put(KEY, b"0123456789")
    assert two.get(KEY) is None
    assert two.clear() == 0
    assert one.get(KEY) == b"0123456789"
    assert (one.stats()[0].hits, two.stats()[0].misses) == (1, 1)


def test_a_value_it_did_not_write_is_a_miss(redis_url: str, client: redis.Redis) -> None:
    backend = RedisBackend(redis_url)
    client.set(f"workbench:cache:entry:{KEY}", b"\x07something else")
    assert backend.get(KEY) is None
    client.set(f"workbench:cache:entry:{KEY}", b"\x01short pointer")
    assert backend.get(KEY) is None


def test_an_injected_client_is_used_and_left_open(redis_url: str, client: redis.Redis) -> None:
    backend = RedisBackend("redis://:pw@elsewhere:1/0", client=client)
    backend.put(KEY, b"v")
    backend.close()
    assert client.get(f"workbench:cache:entry:{KEY}") == b"\x00v"
    assert backend.stats()[0].location == "redis://:***@elsewhere:1/0"


def test_a_server_that_goes_away_is_a_cache_error() -> None:
    with RedisServer() as server:
        backend = RedisBackend(server.url)
        backend.put(KEY, b"v")
    with pytest.raises(CacheError, match=r"cannot reach Redis at .*start redis-server"):
        backend.get(KEY)


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("redis://localhost:6379/0", "redis://localhost:6379/0"),
        ("redis://:secret@host:6379/0", "redis://:***@host:6379/0"),
        ("rediss://user:secret@host:6380/1", "rediss://user:***@host:6380/1"),
        ("redis://host/0?password=secret&db=1", "redis://host/0?password=***&db=1"),
    ],
)
def test_passwords_are_masked(url: str, masked: str) -> None:
    assert mask_url(url) == masked


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"namespace": "a:b"}, "invalid Redis namespace"),
        ({"ttl_s": 0}, "ttl_s must be positive"),
        ({"chunk_bytes": 0}, "chunk_bytes must be positive"),
    ],
)
def test_bad_settings_are_refused(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        RedisBackend("redis://localhost:1/0", **kwargs)  # type: ignore[arg-type]


def test_a_malformed_url_is_a_cache_error() -> None:
    with pytest.raises(CacheError, match="invalid Redis URL"):
        RedisBackend("http://localhost:6379")
