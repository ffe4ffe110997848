"""ModelLifecycleManager: register trained models with their artifact and lineage, move them
between stages and aliases, roll production back, load them verified. Every change is an event.

The metadata lives in a RegistryStore (SQLite locally, Redis in a cluster: `RegistryAddress`), the
artifacts under the artifact root, each with a SHA-256 checksum that is verified before it is
ever unpickled.
"""

from __future__ import annotations

import getpass
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from workbench.events.models import SCHEMA_VERSION, Event, EventType
from workbench.registry.address import RegistryAddress
from workbench.registry.artifacts import ArtifactStore, flavor_of
from workbench.registry.base import (
    ModelDraft,
    ModelVersion,
    RegistryStore,
    Stage,
    Transition,
    ValidationReport,
)
from workbench.registry.deployment import Deployment, load_target
from workbench.registry.errors import (
    AliasNotFoundError,
    RegistryConflictError,
    StaleValidationError,
)
from workbench.registry.gates import LOWER_IS_BETTER, evaluate_gates, parse_gates
from workbench.registry.rules import STAGE_NAMES

if TYPE_CHECKING:
    from workbench.config import Settings


@dataclass(frozen=True)
class ModelEntry:
    """One registered model as the UIs list it: its versions and its history."""

    name: str
    versions: list[ModelVersion]
    history: list[Transition]


Publish = Callable[[Event], None]
# A model -> its metrics on held-out data (the layer above supplies it: the registry does not
# know how to score the models it keeps).
Scorer = Callable[[Any], Mapping[str, float]]


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
        return cls.at(RegistryAddress.from_settings(settings), **kwargs)

    @classmethod
    def at(cls, address: RegistryAddress, **kwargs: Any) -> ModelLifecycleManager:
        store, artifacts = address.open()
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
        return version, self._load_version(version)

    # -- validating ----------------------------------------------------------------------------
    def validate(
        self,
        name: str,
        version: int,
        gates: Mapping[str, str],
        *,
        against: str = "production",
        scorer: Scorer | None = None,
        dataset: str | None = None,
        lower_is_better: frozenset[str] = LOWER_IS_BETTER,
    ) -> ValidationReport:
        """Check `version` against `gates` (metric -> ">= 0.8" or "+0.01 vs champion"); the
        champion is the version `against` names (none yet: champion gates pass, saying so).

        With `scorer` (a model -> metrics function over held-out data, e.g.
        `workbench.tasks.holdout.HeldOut.score`), both models are loaded verified and scored
        on the same rows; without it the metrics recorded at registration are compared. The
        report is kept with the version (see `promote(require_validation=True)`) and emitted."""
        parse_gates(gates)  # a malformed gate fails before any model is loaded
        challenger = self.store.get(name, version)
        champion = self._champion(name, against, exclude=version)
        if scorer is None:
            measured = dict(challenger.metrics)
            best = None if champion is None else dict(champion.metrics)
            dataset = dataset or "the metrics recorded at registration"
        else:
            measured = dict(scorer(self._load_version(challenger)))
            best = None if champion is None else dict(scorer(self._load_version(champion)))
            dataset = dataset or "held-out data"
        gate_report = evaluate_gates(gates, measured, best, lower_is_better)
        report = ValidationReport(
            name=name,
            version=version,
            passed=gate_report.passed,
            gates=gate_report.to_json()["gates"],
            metrics=_finite(measured),
            against=against,
            champion_version=None if champion is None else champion.version,
            champion_metrics=None if best is None else _finite(best),
            dataset=dataset,
            who=self.who,
            at=time.time(),
        )
        self.store.add_validation(report)
        self._emit(EventType.MODEL_VALIDATED, challenger, asdict(report))
        return report

    def _champion(self, name: str, against: str, *, exclude: int) -> ModelVersion | None:
        """The version `against` names; None when that stage is empty or it is `exclude`."""
        try:
            champion = self.store.resolve(name, against)
        except AliasNotFoundError:
            if against.lower() in STAGE_NAMES:
                return None  # nothing in that stage yet: the first version has no champion
            raise
        return None if champion.version == exclude else champion

    def _load_version(self, version: ModelVersion) -> Any:
        return self.artifacts.load(version.artifact_path, version.checksum)

    def latest_validation(self, name: str, version: int) -> ValidationReport | None:
        reports = self.store.validations(name, version)
        return reports[-1] if reports else None

    def _require_passing(self, name: str, version: int, stage: Stage) -> None:
        """The newest report on `version` passed, against the champion there is now."""
        report = self.latest_validation(name, version)
        if report is None:
            raise RegistryConflictError(
                f"{name} v{version} has no validation report and promotion requires a passing "
                f"one; run validate({name!r}, {version}, gates=...) first"
            )
        if not report.passed:
            raise RegistryConflictError(
                f"{name} v{version} failed its validation ({report.failures}); it is not "
                f"promoted to {stage.value}"
            )
        champion = self._champion(name, report.against, exclude=version)
        now = None if champion is None else champion.version
        if now != report.champion_version:
            then = (
                "no champion" if report.champion_version is None else f"v{report.champion_version}"
            )
            raise StaleValidationError(
                f"{name} v{version} was validated against {then} but {report.against} is now "
                f"{'empty' if now is None else f'v{now}'}; validate it again"
            )

    # -- moving --------------------------------------------------------------------------------
    def promote(
        self,
        name: str,
        version: int,
        stage: Stage | str = Stage.PRODUCTION,
        *,
        why: str = "",
        archive_previous: bool = True,
        require_validation: bool = False,
    ) -> list[Transition]:
        """Move `version` to `stage`. With `require_validation`, only a version whose newest
        validation report passed (against the current champion) moves."""
        if require_validation:
            self._require_passing(name, version, Stage(stage))
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

    # -- deploying -----------------------------------------------------------------------------
    def deploy(
        self,
        name: str,
        version: int,
        target: str = "batch",
        options: Mapping[str, Any] | None = None,
    ) -> Deployment:
        """Make `version` reachable through a deployment target (`batch`, `http` or a
        plug-in's); its options are checked before anything moves."""
        chosen = load_target(target)
        chosen.check_options(options or {})
        model_version = self.store.get(name, version)
        deployment = chosen.deploy(self, model_version, options or {})
        self._emit(EventType.MODEL_DEPLOYED, self.store.get(name, version), asdict(deployment))
        return deployment

    def catalog(self) -> list[ModelEntry]:
        """Every model with its versions and history, by name."""
        return [
            ModelEntry(name, self.store.list_versions(name), self.store.history(name))
            for name in self.store.list_names()
        ]

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> ModelLifecycleManager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- events --------------------------------------------------------------------------------
    def _announce(self, moved: list[Transition]) -> list[Transition]:
        if self._publish is None or not moved:
            return moved
        # One call's transitions are all of one model: read its versions once.
        versions = {v.version: v for v in self.store.list_versions(moved[0].name)}
        for transition in moved:
            self._emit(EventType.MODEL_TRANSITION, versions[transition.version], asdict(transition))
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


def _finite(metrics: Mapping[str, float]) -> dict[str, float]:
    """Reports are plain JSON: a NaN metric is left out (a gate on it already failed)."""
    return {k: float(v) for k, v in metrics.items() if math.isfinite(float(v))}


def _seq() -> int:
    """Registry events are ordered by time: several processes change one model."""
    return time.time_ns() // 1000


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name in a container without /etc/passwd entry
        return "unknown"
