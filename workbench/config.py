"""Configuration from the environment (WORKBENCH_*), with sane local defaults."""

from __future__ import annotations

from pathlib import Path

import platformdirs
from pydantic import ByteSize, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from workbench.spec.models import CacheStrategy


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WORKBENCH_", extra="ignore")

    scheduler_address: str | None = Field(
        None, description="A running Dask scheduler; unset means start a local cluster."
    )
    workers: int | None = Field(None, ge=1, description="Local workers; default: one per core.")
    threads_per_worker: int = Field(1, ge=1)
    worker_memory_limit: str = Field("auto", description="Per local worker, e.g. '4GiB'.")
    home: Path = Field(Path(".workbench"), description="Local state: runs, outputs, caches.")
    keep_results: int = Field(
        4, ge=0, description="Finished executions whose task outputs stay on the workers."
    )
    redis_url: str | None = Field(
        None, description="Redis for shared state and the shared cache; unset in local mode."
    )
    cache_strategy: CacheStrategy | None = Field(
        None,
        description="For tasks that set no cache_strategy: disk locally, hybrid with Redis.",
    )
    cache_dir: Path = Field(
        default_factory=lambda: platformdirs.user_cache_path("workbench"),
        description="The disk cache and the cache ledger.",
    )
    cache_memory_bytes: ByteSize = Field(ByteSize(512 * 2**20), description="Memory tier bound.")
    cache_disk_bytes: ByteSize = Field(ByteSize(10 * 2**30), description="Disk cache bound.")
    cache_ttl_s: float = Field(7 * 24 * 3600.0, gt=0, description="Lifetime of Redis entries.")
    cache_chunk_bytes: ByteSize = Field(
        ByteSize(8 * 2**20), description="Redis payloads above this are stored in chunks."
    )
    cache_secret: SecretStr | None = Field(
        None, description="HMAC key for cache entries; every instance of a cluster needs the same."
    )
    cache_key_file: Path | None = Field(
        None, description="Where the local HMAC key lives; default: the user's config folder."
    )

    @property
    def default_cache_strategy(self) -> CacheStrategy:
        if self.cache_strategy is not None:
            return self.cache_strategy
        return CacheStrategy.HYBRID if self.redis_url else CacheStrategy.DISK
