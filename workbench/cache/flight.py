"""Single flight: when several executions need the same missing key at once, one computes it
and the others wait for its result instead of running the task body again.

Locally an asyncio registry in the orchestrator's event loop; in cluster mode a redis-py lock
per key, whose lease the holder renews while it computes (a crashed holder's lease runs out
and a waiter takes over).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, Protocol


class Claim(Protocol):
    def release(self) -> None: ...


class Flights(Protocol):
    async def claim(self, key: str) -> Claim | None:
        """The right to compute `key`, or None when another execution is computing it."""
        ...

    async def wait(self, key: str) -> None:
        """Return once nobody is computing `key` any more (landed or abandoned)."""
        ...


class _LocalClaim:
    def __init__(self, flights: LocalFlights, key: str, landed: asyncio.Event) -> None:
        self._flights, self._key, self._landed = flights, key, landed

    def release(self) -> None:
        if self._flights._flying.get(self._key) is self._landed:
            del self._flights._flying[self._key]
        self._landed.set()


class LocalFlights:
    def __init__(self) -> None:
        self._flying: dict[str, asyncio.Event] = {}

    async def claim(self, key: str) -> Claim | None:
        if key in self._flying:
            return None
        landed = self._flying[key] = asyncio.Event()
        return _LocalClaim(self, key, landed)

    async def wait(self, key: str) -> None:
        landed = self._flying.get(key)
        if landed is not None:
            await landed.wait()


class _RedisClaim:
    def __init__(self, lock: Any, renewal: asyncio.Task[None]) -> None:
        self._lock, self._renewal = lock, renewal

    def release(self) -> None:
        self._renewal.cancel()
        with contextlib.suppress(Exception):  # lease already gone: nothing left to release
            self._lock.release()


class RedisFlights:
    def __init__(self, client: Any, namespace: str = "workbench", lease_s: float = 30.0) -> None:
        self._client = client
        self._namespace = namespace
        self._lease_s = lease_s

    def _name(self, key: str) -> str:
        return f"{self._namespace}:cache:flight:{key}"

    async def claim(self, key: str) -> Claim | None:
        lock = self._client.lock(self._name(key), timeout=self._lease_s, blocking=False)
        if not await asyncio.to_thread(lock.acquire, blocking=False):
            return None
        return _RedisClaim(lock, asyncio.create_task(self._renew(lock)))

    async def _renew(self, lock: Any) -> None:
        while True:
            await asyncio.sleep(self._lease_s / 3)
            await asyncio.to_thread(lock.reacquire)

    async def wait(self, key: str) -> None:
        delay = 0.02
        while await asyncio.to_thread(self._client.exists, self._name(key)):
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.5)
