"""Where a registry lives, as a small picklable value: what a task on a Dask worker is handed
so it can open the same registry as the orchestrator that submitted it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from workbench.config import Settings
    from workbench.registry.artifacts import ArtifactStore
    from workbench.registry.base import RegistryStore


@dataclass(frozen=True)
class RegistryAddress:
    """The metadata in Redis (a cluster) or in a SQLite file (local); artifacts in a folder
    every process that loads models can read."""

    artifact_dir: str
    sqlite_path: str | None = None
    redis_url: str | None = field(default=None, repr=False)  # may hold a password
    namespace: str = "workbench"

    @classmethod
    def from_settings(cls, settings: Settings) -> RegistryAddress:
        """The cluster's Redis when one is configured, else SQLite in the cache folder;
        artifacts under the artifact root (shared by a cluster) or the cache folder."""
        artifacts = (settings.artifact_root or settings.cache_dir) / "registry"
        if settings.redis_url:
            return cls(str(artifacts), redis_url=settings.redis_url, namespace=settings.namespace)
        return cls(str(artifacts), sqlite_path=str(settings.cache_dir / "registry.sqlite"))

    def open(self) -> tuple[RegistryStore, ArtifactStore]:
        from workbench.registry.artifacts import ArtifactStore

        artifacts = ArtifactStore(Path(self.artifact_dir))
        if self.redis_url:
            import redis

            from workbench.registry.redis_store import RedisRegistryStore

            client = redis.Redis.from_url(self.redis_url)
            store = RedisRegistryStore(client, namespace=self.namespace, owns_client=True)
            return store, artifacts
        from workbench.registry.sqlite_store import SqliteRegistryStore

        assert self.sqlite_path is not None, "an address names Redis or a SQLite file"
        Path(self.sqlite_path).parent.mkdir(parents=True, exist_ok=True)
        return SqliteRegistryStore(self.sqlite_path), artifacts
