"""The registry in one process's memory: tests, notebooks, a single instance.

One lock makes every operation atomic. Versions are kept as the same JSON the other stores
write, so a caller never shares a dict with the store.
"""

from __future__ import annotations

import threading
import time

from workbench.registry.base import Transition
from workbench.registry.codec import load_version, version_json
from workbench.registry.engine import Clock, Rule, RuleStore
from workbench.registry.errors import ModelNotFoundError
from workbench.registry.rules import ModelState


class MemoryRegistryStore(RuleStore):
    def __init__(self, clock: Clock = time.time) -> None:
        super().__init__(clock)
        self._lock = threading.Lock()
        self._versions: dict[str, dict[int, str]] = {}
        self._production: dict[str, list[int]] = {}
        self._history: dict[str, list[Transition]] = {}
        self._reports: dict[tuple[str, int], list[str]] = {}

    def _register(self, name: str, version_json: str) -> int:
        with self._lock:
            versions = self._versions.setdefault(name, {})
            version = len(versions) + 1  # versions are never deleted
            versions[version] = version_json
            return version

    def _load_locked(self, name: str) -> ModelState:
        stored = self._versions.get(name)
        if not stored:
            raise ModelNotFoundError(name, self._versions)
        versions = {v: load_version(name, v, text) for v, text in stored.items()}
        return ModelState(name, versions, list(self._production.get(name, [])))

    def _load(self, name: str) -> ModelState:
        with self._lock:
            return self._load_locked(name)

    def _mutate(self, name: str, rule: Rule) -> list[Transition]:
        with self._lock:
            change = rule(self._load_locked(name))
            for version, mv in change.versions.items():
                self._versions[name][version] = version_json(mv)
            self._production[name] = list(change.production)
            self._history.setdefault(name, []).extend(change.transitions)
            return list(change.transitions)

    def _add_validation(self, name: str, version: int, report_json: str) -> None:
        with self._lock:
            self._reports.setdefault((name, version), []).append(report_json)

    def _validations(self, name: str, version: int) -> list[str]:
        with self._lock:
            return list(self._reports.get((name, version), []))

    def list_names(self) -> list[str]:
        with self._lock:
            return sorted(self._versions)

    def history(self, name: str) -> list[Transition]:
        with self._lock:
            if name not in self._versions:
                raise ModelNotFoundError(name, self._versions)
            return list(self._history.get(name, []))

    def close(self) -> None:
        """Nothing to release."""
