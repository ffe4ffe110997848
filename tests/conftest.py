"""Fixtures shared by every test directory. Redis: one real server per session."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import redis

from tests.support.redis_server import RedisServer


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A redis-server on a free local port, started on first use (never skipped: a missing
    redis-server fails the test with the command that installs it)."""
    with RedisServer() as server:
        yield server


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The session server's URL, emptied before each test."""
    client = redis.Redis.from_url(redis_server.url)
    try:
        client.flushall()
    finally:
        client.close()
    return redis_server.url


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """No test reads or writes the user's real cache or HMAC key: one private set per session.
    Child processes (the CLI, Dask workers) inherit it through the environment."""
    root = tmp_path_factory.mktemp("workbench-cache")
    saved = {name: os.environ.get(name) for name in _CACHE_ENV}
    os.environ["WORKBENCH_CACHE_DIR"] = str(root / "cache")
    os.environ["WORKBENCH_CACHE_KEY_FILE"] = str(root / "cache.key")
    os.environ.pop("WORKBENCH_CACHE_SECRET", None)
    os.environ.pop("WORKBENCH_REDIS_URL", None)
    os.environ.pop("WORKBENCH_CACHE_STRATEGY", None)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


_CACHE_ENV = (
    "WORKBENCH_CACHE_DIR",
    "WORKBENCH_CACHE_KEY_FILE",
    "WORKBENCH_CACHE_SECRET",
    "WORKBENCH_REDIS_URL",
    "WORKBENCH_CACHE_STRATEGY",
)
