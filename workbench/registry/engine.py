"""The registry operations every store shares, on top of three primitives a store provides:
`_load` (one model's state), `_mutate` (apply a rule atomically) and `_register`."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable

from workbench.registry import rules
from workbench.registry.base import ModelDraft, ModelVersion, Stage, Transition, ValidationReport
from workbench.registry.codec import draft_json, load_validation, load_version, validation_json
from workbench.registry.errors import RegistryInputError
from workbench.registry.rules import Change, ModelState

Clock = Callable[[], float]
Rule = Callable[[ModelState], Change]


class RuleStore(ABC):
    def __init__(self, clock: Clock = time.time) -> None:
        self._clock = clock

    # -- what a store provides -----------------------------------------------------------------
    @abstractmethod
    def _register(self, name: str, version_json: str) -> int:
        """Store `version_json` under the next version of `name` atomically; return it."""

    @abstractmethod
    def _load(self, name: str) -> ModelState:
        """ModelNotFoundError when `name` has no version."""

    @abstractmethod
    def _mutate(self, name: str, rule: Rule) -> list[Transition]:
        """Load, apply `rule` and write its change (versions, stack, transitions) as one
        atomic step; a rule that raises writes nothing."""

    @abstractmethod
    def _add_validation(self, name: str, version: int, report_json: str) -> None:
        """Append a report to the version's list (the version is known to exist)."""

    @abstractmethod
    def _validations(self, name: str, version: int) -> list[str]:
        """The version's reports as stored, oldest first."""

    @abstractmethod
    def list_names(self) -> list[str]: ...

    @abstractmethod
    def history(self, name: str) -> list[Transition]: ...

    @abstractmethod
    def close(self) -> None: ...

    # -- the RegistryStore operations ----------------------------------------------------------
    def register(self, name: str, draft: ModelDraft) -> ModelVersion:
        rules.check_model_name(name)
        created = self._clock() if draft.created_at is None else draft.created_at
        try:
            encoded = draft_json(draft, created)
        except (TypeError, ValueError) as exc:  # before anything is written
            raise RegistryInputError(
                f"model {name!r}: metrics must be numbers and signature, params and lineage "
                f"plain JSON values ({exc})"
            ) from None
        version = self._register(name, encoded)
        return load_version(name, version, encoded)  # exactly what the store now holds

    def get(self, name: str, version: int) -> ModelVersion:
        return rules.require(self._load(rules.check_model_name(name)), version)

    def resolve(self, name: str, ref: str) -> ModelVersion:
        return rules.resolve(self._load(rules.check_model_name(name)), ref)

    def list_versions(self, name: str) -> list[ModelVersion]:
        versions = self._load(rules.check_model_name(name)).versions
        return [versions[v] for v in sorted(versions)]

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
        at = self._clock()
        return self._mutate(
            rules.check_model_name(name),
            lambda s: rules.transition(
                s, version, to_stage, who=who, why=why, archive_previous=archive_previous, at=at
            ),
        )

    def set_alias(
        self, name: str, alias: str, version: int, *, who: str, why: str = ""
    ) -> list[Transition]:
        at = self._clock()
        return self._mutate(
            rules.check_model_name(name),
            lambda s: rules.set_alias(s, alias, version, who=who, why=why, at=at),
        )

    def remove_alias(self, name: str, alias: str, *, who: str, why: str = "") -> list[Transition]:
        at = self._clock()
        return self._mutate(
            rules.check_model_name(name),
            lambda s: rules.remove_alias(s, alias, who=who, why=why, at=at),
        )

    def rollback(self, name: str, *, who: str, why: str = "") -> list[Transition]:
        at = self._clock()
        return self._mutate(
            rules.check_model_name(name), lambda s: rules.rollback(s, who=who, why=why, at=at)
        )

    def add_validation(self, report: ValidationReport) -> None:
        self.get(report.name, report.version)  # versions are never deleted: it stays known
        try:
            encoded = validation_json(report)
        except (TypeError, ValueError) as exc:
            raise RegistryInputError(
                f"validation report of {report.name!r} v{report.version} is not plain JSON "
                f"({exc}); metrics must be finite numbers"
            ) from None
        self._add_validation(report.name, report.version, encoded)

    def validations(self, name: str, version: int) -> list[ValidationReport]:
        self.get(name, version)
        return [load_validation(text) for text in self._validations(name, version)]
