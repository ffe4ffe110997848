"""ModelLifecycleManager: register trained models with their artifact and lineage, move them
between stages and aliases, roll production back, load them verified. Every change is an event.

The metadata lives in a RegistryStore (SQLite locally, Redis in a cluster: `open_registry`), the
artifacts under the artifact root, each with a SHA-256 checksum that is verified before it is
ever unpickled.
"""

from __future__ import annotations

import getpass
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from workbench.events.models import SCHEMA_VERSION, Event, EventType
from workbench.registry.artifacts import ArtifactStore, flavor_of
from workbench.registry.base import ModelDraft, ModelVersion, RegistryStore, Stage, Transition

if TYPE_CHECKING:
    from workbench.config import Settings

Publish = Callable[[Event], None]


def open_registry(settings: Settings) -> tuple[RegistryStore, ArtifactStore]:
    """The cluster's registry in Redis when one is configured, else SQLite in the cache folder;
    artifacts under the artifact root (shared by a cluster) or the cache folder."""
    artifacts = ArtifactStore((settings.artifact_root or settings.cache_dir) / "registry")
    if settings.redis_url:
        import redis

        from workbench.registry.redis_store import RedisRegistryStore

        client = redis.Redis.from_url(settings.redis_url)
        return RedisRegistryStore(client, namespace=settings.namespace), artifacts
    from workbench.registry.sqlite_store import SqliteRegistryStore

    settings.cache_dir.mkdir(parents=True, exist_ok=True)
    return SqliteRegistryStore(settings.cache_dir / "registry.sqlite"), artifacts


class ModelLifecycleManager:
    def __init__(
        self,
        store: RegistryStore,
        artifacts: ArtifactStore,
        *,
        publish: Publish | None = None,
        who: str | None = None,
        instance_id: str = "local",
    ) -> None:
        self.store = store
        self.artifacts = artifacts
        self._publish = publish
        self.who = who or _user()
        self._instance_id = instance_id

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: Any) -> ModelLifecycleManager:
        store, artifacts = open_registry(settings)
        return cls(store, artifacts, **kwargs)

    # -- registering ---------------------------------------------------------------------------
    def register(
        self,
        name: str,
        model: Any,
        *,
        metrics: Mapping[str, float] | None = None,
        params: Mapping[str, Any] | None = None,
        signature: Mapping[str, Any] | None = None,
        lineage: Mapping[str, Any] | None = None,
        flavor: str | None = None,
    ) -> ModelVersion:
        """A new version of `name`: the artifact is written (and checksummed) first, so a
        version never points at a missing file."""
        stored = self.artifacts.save(name, "model", model)
        estimator = getattr(model, "estimator", model)
        draft = ModelDraft(
            artifact_path=stored.path,
            checksum=stored.checksum,
            flavor=flavor or flavor_of(estimator),
            signature=dict(signature or getattr(model, "input_signature", None) or {}),
            metrics={k: float(v) for k, v in (metrics or {}).items()},
            params=dict(params or {}),
            lineage=dict(lineage or {}),
            created_by=self.who,
        )
        version = self.store.register(name, draft)
        self._emit(
            EventType.MODEL_REGISTERED,
            version,
            {"checksum": version.checksum, "flavor": version.flavor, "lineage": version.lineage},
        )
        return version

    def load(self, name: str, ref: str = "production") -> tuple[ModelVersion, Any]:
        """The version `ref` names ("3", a stage, an alias) and its model, verified."""
        version = self.store.resolve(name, ref)
        return version, self.artifacts.load(version.artifact_path, version.checksum)

    # -- moving --------------------------------------------------------------------------------
    def promote(
        self,
        name: str,
        version: int,
        stage: Stage | str = Stage.PRODUCTION,
        *,
        why: str = "",
        archive_previous: bool = True,
    ) -> list[Transition]:
        moved = self.store.transition(
            name, version, stage, who=self.who, why=why, archive_previous=archive_previous
        )
        return self._announce(moved)

    def archive(self, name: str, version: int, *, why: str = "") -> list[Transition]:
        return self.promote(name, version, Stage.ARCHIVED, why=why)

    def rollback(self, name: str, *, why: str = "") -> list[Transition]:
        return self._announce(self.store.rollback(name, who=self.who, why=why))

    def set_alias(self, name: str, alias: str, version: int, *, why: str = "") -> list[Transition]:
        return self._announce(self.store.set_alias(name, alias, version, who=self.who, why=why))

    def remove_alias(self, name: str, alias: str, *, why: str = "") -> list[Transition]:
        return self._announce(self.store.remove_alias(name, alias, who=self.who, why=why))

    def close(self) -> None:
        self.store.close()

    # -- events --------------------------------------------------------------------------------
    def _announce(self, moved: list[Transition]) -> list[Transition]:
        for transition in moved:
            version = self.store.get(transition.name, transition.version)
            self._emit(EventType.MODEL_TRANSITION, version, asdict(transition))
        return moved

    def _emit(self, kind: EventType, version: ModelVersion, data: dict[str, Any]) -> None:
        if self._publish is None:
            return
        self._publish(
            Event(
                schema_version=SCHEMA_VERSION,
                type=kind,
                execution_id=f"model:{version.name}",
                workflow_id=version.name,
                task_id=None,
                status=version.stage.value,
                metrics=dict(version.metrics),
                data={"version": version.version, "aliases": list(version.aliases), **data},
                instance_id=self._instance_id,
                seq=_seq(),
                timestamp=time.time(),
            )
        )


def _seq() -> int:
    """Registry events are ordered by time: several processes change one model."""
    return time.time_ns() // 1000


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name in a container without /etc/passwd entry
        return "unknown"
