"""ResultCache: the one object the orchestrator asks for cached results.

It maps a task's strategy to a backend (falling back to disk where Redis is not configured),
seals every entry with an HMAC before it is stored and verifies it before anything reads it,
keeps the ledger that `explain` reads, and coordinates single flight.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from typing import Any

from workbench.cache.base import BackendStats, CacheBackend
from workbench.cache.disk import DiskBackend
from workbench.cache.entry import CacheEntry, decode_entry, encode_entry
from workbench.cache.flight import Flights, LocalFlights, RedisFlights
from workbench.cache.hybrid import HybridBackend
from workbench.cache.integrity import load_secret, seal, unseal
from workbench.cache.ledger import DiskLedger, Ledger, RedisLedger
from workbench.cache.memory import MemoryBackend
from workbench.cache.null import NullBackend
from workbench.cache.redis_backend import RedisBackend
from workbench.config import Settings
from workbench.errors import CacheIntegrityError
from workbench.spec.models import CacheStrategy

log = logging.getLogger(__name__)
security_log = logging.getLogger("workbench.security")


class ResultCache:
    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings()
        self._lock = threading.Lock()
        self._backends: dict[CacheStrategy, CacheBackend] = {}
        self._memory: MemoryBackend | None = None
        self._disk: DiskBackend | None = None
        self._redis: RedisBackend | None = None
        self._redis_client: Any = None
        self._secret: bytes | None = None
        self.notices: list[str] = []  # one line per fallback taken, for the CLI to show
        self.flights: Flights = (
            RedisFlights(
                self._client(), self.settings.namespace, self.settings.cache_flight_lease_ms / 1000
            )
            if self.settings.redis_url
            else LocalFlights()
        )
        self.ledger: Ledger = (
            RedisLedger(self._client(), self.settings.namespace)
            if self.settings.redis_url
            else DiskLedger(self.settings.cache_dir / "ledger")
        )

    # -- strategies -> backends ----------------------------------------------------------------
    def backend(self, strategy: CacheStrategy) -> CacheBackend:
        with self._lock:
            found = self._backends.get(strategy)
            if found is None:
                found = self._backends[strategy] = self._build(strategy)
            return found

    def _build(self, strategy: CacheStrategy) -> CacheBackend:
        if strategy is CacheStrategy.NONE:
            return NullBackend()
        if strategy is CacheStrategy.MEMORY:
            return self._memory_tier()
        if strategy is CacheStrategy.DISK:
            return self._disk_tier()
        if self.settings.redis_url is None:
            # The seed's examples ask for redis; without a Redis they still run, on disk.
            fallback = "disk" if strategy is CacheStrategy.REDIS else "memory in front of disk"
            self.notices.append(
                f"cache_strategy {strategy.value!r} without WORKBENCH_REDIS_URL: using {fallback}"
            )
            if strategy is CacheStrategy.REDIS:
                return self._disk_tier()
            return HybridBackend(self._memory_tier(), self._disk_tier())
        if strategy is CacheStrategy.REDIS:
            return self._redis_tier()
        return HybridBackend(self._memory_tier(), self._redis_tier())

    def _memory_tier(self) -> MemoryBackend:
        if self._memory is None:
            self._memory = MemoryBackend(capacity_bytes=int(self.settings.cache_memory_bytes))
        return self._memory

    def _disk_tier(self) -> DiskBackend:
        if self._disk is None:
            self._disk = DiskBackend(
                self.settings.cache_dir / "entries",
                capacity_bytes=int(self.settings.cache_disk_bytes),
            )
        return self._disk

    def _redis_tier(self) -> RedisBackend:
        if self._redis is None:
            assert self.settings.redis_url is not None
            self._redis = RedisBackend(
                self.settings.redis_url,
                namespace=self.settings.namespace,
                ttl_s=self.settings.cache_ttl_s,
                chunk_bytes=int(self.settings.cache_chunk_bytes),
                client=self._client(),
            )
        return self._redis

    def _client(self) -> Any:
        if self._redis_client is None:
            import redis

            assert self.settings.redis_url is not None
            self._redis_client = redis.Redis.from_url(
                self.settings.redis_url, socket_connect_timeout=2.0
            )
        return self._redis_client

    @property
    def secret(self) -> bytes:
        if self._secret is None:
            configured = self.settings.cache_secret
            self._secret = load_secret(
                configured.get_secret_value() if configured else None, self.settings.cache_key_file
            )
        return self._secret

    # -- entries -------------------------------------------------------------------------------
    def lookup(self, key: str, strategy: CacheStrategy) -> CacheEntry | None:
        """The verified entry, or None. A tampered or damaged entry is a miss, never loaded."""
        blob = self.backend(strategy).get(key)
        if blob is None:
            return None
        try:
            return decode_entry(unseal(key, blob, self.secret))
        except CacheIntegrityError as exc:
            security_log.warning(
                "SECURITY: cache entry %s (%s) failed its integrity check and was ignored: %s",
                key[:16],
                strategy.value,
                exc,
            )
            return None

    def contains(self, key: str, strategy: CacheStrategy) -> bool:
        return self.backend(strategy).contains(key)

    def store(self, key: str, strategy: CacheStrategy, entry: CacheEntry) -> None:
        self.backend(strategy).put(key, seal(key, encode_entry(entry), self.secret))

    # -- operator views ------------------------------------------------------------------------
    def configured_backends(self) -> list[CacheBackend]:
        """Every store this configuration can reach: memory, disk, and Redis when configured."""
        tiers: list[CacheBackend] = [self._memory_tier(), self._disk_tier()]
        if self.settings.redis_url:
            tiers.append(self._redis_tier())
        return tiers

    def stats(self) -> list[BackendStats]:
        return [s for backend in self.configured_backends() for s in backend.stats()]

    def clear(self, backends: Iterable[CacheBackend] | None = None) -> int:
        return sum(b.clear() for b in (backends or self.configured_backends()))

    def close(self) -> None:
        # Every strategy's backend is made of these tiers (hybrid of two, none of nothing).
        for tier in (self._memory, self._disk, self._redis):
            if tier is not None:
                tier.close()
        if self._redis_client is not None:
            self._redis_client.close()
