"""The registry seam: model versions, their stage transitions, and the store that keeps them.

A version's artifact, checksum, signature, metrics, params and lineage never change once
registered; only its stage and aliases move, and every move is a recorded `Transition`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol


class Stage(StrEnum):
    NONE = "none"
    STAGING = "staging"
    PRODUCTION = "production"  # at most one version per model
    ARCHIVED = "archived"


@dataclass(frozen=True)
class ModelDraft:
    """What a caller registers; the store adds the name, version, stage and time."""

    artifact_path: str
    checksum: str
    flavor: str
    signature: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    # workflow_id, execution_id, task_id, cache keys, dataset fingerprint, versions: free JSON
    lineage: dict[str, Any] = field(default_factory=dict)
    created_by: str = ""
    created_at: float | None = None  # None: the store's clock at registration


@dataclass(frozen=True)
class ModelVersion:
    name: str
    version: int
    stage: Stage
    aliases: tuple[str, ...]
    artifact_path: str
    checksum: str
    flavor: str
    signature: dict[str, Any]
    metrics: dict[str, float]
    params: dict[str, Any]
    lineage: dict[str, Any]
    created_at: float
    created_by: str


@dataclass(frozen=True)
class AliasChange:
    """`alias` moved from one version to another; None on a side means it was not set."""

    alias: str
    from_version: int | None
    to_version: int | None


@dataclass(frozen=True)
class Transition:
    name: str
    version: int
    from_stage: Stage
    to_stage: Stage
    alias_changes: tuple[AliasChange, ...]
    who: str
    why: str
    at: float


@dataclass(frozen=True)
class ValidationReport:
    """A version's metrics on held-out data checked against gates, kept with the version so a
    promotion can require a passing one. `gates` holds `GateReport.to_json()` rows."""

    name: str
    version: int
    passed: bool
    gates: list[dict[str, Any]]
    metrics: dict[str, float]  # the challenger's, on `dataset`
    against: str  # the champion's ref, e.g. "production"
    champion_version: int | None  # None: there was no champion to compare with
    champion_metrics: dict[str, float] | None
    dataset: str  # what the metrics were measured on
    who: str
    at: float

    @property
    def failures(self) -> str:
        """The failed gates as "metric: reason; ...", for messages."""
        return "; ".join(f"{g['metric']}: {g['reason']}" for g in self.gates if not g["passed"])


class RegistryStore(Protocol):
    def register(self, name: str, draft: ModelDraft) -> ModelVersion:
        """Store `draft` as the next version of `name` (1 for a new name), stage `none`.
        Allocation is atomic: concurrent registrations get distinct consecutive versions."""
        ...

    def get(self, name: str, version: int) -> ModelVersion: ...

    def resolve(self, name: str, ref: str) -> ModelVersion:
        """`ref` is a version number ("3"), a stage (the newest version in it) or an alias."""
        ...

    def list_names(self) -> list[str]: ...

    def list_versions(self, name: str) -> list[ModelVersion]:
        """Oldest first."""
        ...

    def transition(
        self,
        name: str,
        version: int,
        to_stage: Stage | str,
        *,
        who: str,
        why: str = "",
        archive_previous: bool = True,
    ) -> list[Transition]:
        """Move `version` to `to_stage`. Promoting to production moves the current production
        version to `archived` (or to `none` with archive_previous=False), in the same atomic
        step. Already in `to_stage`: nothing happens, and the result is empty."""
        ...

    def set_alias(
        self, name: str, alias: str, version: int, *, who: str, why: str = ""
    ) -> list[Transition]:
        """Point `alias` at `version`, moving it off any other version of `name`."""
        ...

    def remove_alias(
        self, name: str, alias: str, *, who: str, why: str = ""
    ) -> list[Transition]: ...

    def rollback(self, name: str, *, who: str, why: str = "") -> list[Transition]:
        """Production returns to the version that was production before the current one; the
        current one is archived. RegistryConflictError when there is no such version."""
        ...

    def history(self, name: str) -> list[Transition]:
        """Every transition of `name`, oldest first."""
        ...

    def add_validation(self, report: ValidationReport) -> None:
        """Keep `report` with its version (VersionNotFoundError when there is no such one)."""
        ...

    def validations(self, name: str, version: int) -> list[ValidationReport]:
        """Every report on `version`, oldest first."""
        ...

    def close(self) -> None: ...
