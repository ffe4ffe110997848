"""The "none" cache strategy: a backend that stores nothing."""

from __future__ import annotations

import threading

from workbench.cache.base import BackendStats, check_payload, validate_key


class NullBackend:
    """Every get is a miss (counted, so stats show what caching would have been asked for)."""

    name = "none"

    def __init__(self) -> None:
        self._misses = 0
        self._lock = threading.Lock()

    def get(self, key: str) -> bytes | None:
        validate_key(key)
        with self._lock:
            self._misses += 1
        return None

    def put(self, key: str, payload: bytes) -> None:
        validate_key(key)
        check_payload(payload)

    def contains(self, key: str) -> bool:
        validate_key(key)
        return False

    def delete(self, key: str) -> bool:
        validate_key(key)
        return False

    def clear(self) -> int:
        return 0

    def stats(self) -> list[BackendStats]:
        with self._lock:
            misses = self._misses
        return [BackendStats(backend=self.name, entries=0, bytes=0, hits=0, misses=misses)]

    def close(self) -> None:
        return None
