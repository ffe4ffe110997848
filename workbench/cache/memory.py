"""In-process LRU cache bounded by total payload bytes."""

from __future__ import annotations

import threading
from collections import OrderedDict

from workbench.cache.base import BackendStats, check_payload, validate_key

DEFAULT_MEMORY_CAPACITY = 512 * 1024**2


class MemoryBackend:
    """An LRU of payloads in this process. `get` returns the stored bytes object itself (bytes are
    immutable, so sharing is safe and a hit costs no copy)."""

    name = "memory"

    def __init__(self, capacity_bytes: int = DEFAULT_MEMORY_CAPACITY) -> None:
        if capacity_bytes <= 0:
            raise ValueError(f"capacity_bytes must be positive, got {capacity_bytes}")
        self.capacity_bytes = capacity_bytes
        self._entries: OrderedDict[str, bytes] = OrderedDict()  # least recently used first
        self._bytes = 0
        self._hits = 0
        self._misses = 0
        self._evictions = 0
        self._lock = threading.Lock()

    def get(self, key: str) -> bytes | None:
        validate_key(key)
        with self._lock:
            payload = self._entries.get(key)
            if payload is None:
                self._misses += 1
                return None
            self._entries.move_to_end(key)
            self._hits += 1
            return payload

    def put(self, key: str, payload: bytes) -> None:
        validate_key(key)
        check_payload(payload)
        with self._lock:
            self._discard(key)  # an overwrite too large to keep must not leave the old value
            if len(payload) > self.capacity_bytes:
                return
            self._entries[key] = payload
            self._bytes += len(payload)
            while self._bytes > self.capacity_bytes:
                _, evicted = self._entries.popitem(last=False)
                self._bytes -= len(evicted)
                self._evictions += 1

    def contains(self, key: str) -> bool:
        validate_key(key)
        with self._lock:
            return key in self._entries

    def delete(self, key: str) -> bool:
        validate_key(key)
        with self._lock:
            return self._discard(key)

    def clear(self) -> int:
        with self._lock:
            removed = len(self._entries)
            self._entries.clear()
            self._bytes = 0
            return removed

    def stats(self) -> list[BackendStats]:
        with self._lock:
            return [
                BackendStats(
                    backend=self.name,
                    entries=len(self._entries),
                    bytes=self._bytes,
                    hits=self._hits,
                    misses=self._misses,
                    evictions=self._evictions,
                    capacity_bytes=self.capacity_bytes,
                )
            ]

    def close(self) -> None:
        self.clear()  # nothing outlives the process anyway; free the memory now

    def _discard(self, key: str) -> bool:
        payload = self._entries.pop(key, None)
        if payload is None:
            return False
        self._bytes -= len(payload)
        return True
