"""Memory in front of a shared tier (Redis; disk where no Redis is configured)."""

from __future__ import annotations

from workbench.cache.base import BackendStats, CacheBackend
from workbench.cache.memory import MemoryBackend


class HybridBackend:
    """Read-through (a hit in `back` is promoted to memory), write-through (puts go to both).

    Each tier counts its own hits and misses: a memory miss that Redis answers is a memory miss
    and a Redis hit. Keys are content addresses, so a promotion racing a put of the same key
    stores the same bytes either way.
    """

    name = "hybrid"

    def __init__(self, front: MemoryBackend, back: CacheBackend) -> None:
        self.front = front
        self.back = back

    def get(self, key: str) -> bytes | None:
        payload = self.front.get(key)
        if payload is None:
            payload = self.back.get(key)
            if payload is not None:
                self.front.put(key, payload)
        return payload

    def put(self, key: str, payload: bytes) -> None:
        self.back.put(key, payload)  # first: if it fails, memory holds nothing `back` lacks
        self.front.put(key, payload)

    def contains(self, key: str) -> bool:
        return self.front.contains(key) or self.back.contains(key)

    def delete(self, key: str) -> bool:
        in_front = self.front.delete(key)
        in_back = self.back.delete(key)
        return in_front or in_back

    def clear(self) -> int:
        """The larger tier's count: memory normally holds a subset of `back`."""
        return max(self.back.clear(), self.front.clear())

    def stats(self) -> list[BackendStats]:
        return self.front.stats() + self.back.stats()

    def close(self) -> None:
        try:
            self.back.close()
        finally:
            self.front.close()
