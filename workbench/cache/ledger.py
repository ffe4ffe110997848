"""The ledger: for each (workflow, task), the key recipe of its last run.

`workbench cache explain` compares today's recipe with the recorded one to say which input
changed. Locally it is a JSON file per workflow; in cluster mode a Redis hash per workflow.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from workbench.cache.keys import KeyInputs


@dataclass(frozen=True)
class LedgerRecord:
    key: str
    inputs: KeyInputs
    execution_id: str = ""
    at: float = 0.0  # when that run computed or reused it

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "inputs": self.inputs.to_json(),
            "execution_id": self.execution_id,
            "at": self.at,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LedgerRecord:
        return cls(
            key=str(data["key"]),
            inputs=KeyInputs.from_json(data["inputs"]),
            execution_id=str(data.get("execution_id", "")),
            at=float(data.get("at", 0.0)),
        )


class Ledger(Protocol):
    def record_many(self, workflow_id: str, records: Mapping[str, LedgerRecord]) -> None:
        """Remember the recipes of several tasks (task id -> record) in one write."""
        ...

    def last(self, workflow_id: str, task_id: str) -> LedgerRecord | None: ...


class DiskLedger:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, workflow_id: str) -> Path:
        return self.root / f"{workflow_id}.json"

    def record_many(self, workflow_id: str, records: Mapping[str, LedgerRecord]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        path = self._path(workflow_id)
        with _locked(path.with_suffix(".lock")):
            stored = self._read(path)
            stored.update({task_id: record.to_json() for task_id, record in records.items()})
            fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".ledger-")
            with os.fdopen(fd, "w") as handle:
                json.dump(stored, handle, sort_keys=True, default=str)
            os.replace(tmp, path)

    def last(self, workflow_id: str, task_id: str) -> LedgerRecord | None:
        found = self._read(self._path(workflow_id)).get(task_id)
        try:
            return None if found is None else LedgerRecord.from_json(found)
        except (KeyError, TypeError, ValueError):  # written by an older version
            return None

    @staticmethod
    def _read(path: Path) -> dict[str, Any]:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):  # none yet, or damaged: explain then knows no history
            return {}
        return data if isinstance(data, dict) else {}


class RedisLedger:
    def __init__(self, client: Any, namespace: str = "workbench") -> None:
        self._client = client
        self._namespace = namespace

    def _hash(self, workflow_id: str) -> str:
        return f"{self._namespace}:cache:ledger:{workflow_id}"

    def record_many(self, workflow_id: str, records: Mapping[str, LedgerRecord]) -> None:
        if records:
            mapping = {tid: json.dumps(r.to_json(), default=str) for tid, r in records.items()}
            self._client.hset(self._hash(workflow_id), mapping=mapping)

    def last(self, workflow_id: str, task_id: str) -> LedgerRecord | None:
        raw = self._client.hget(self._hash(workflow_id), task_id)
        try:
            return None if raw is None else LedgerRecord.from_json(json.loads(raw))
        except (KeyError, TypeError, ValueError):
            return None


class MemoryLedger:
    def __init__(self) -> None:
        self._records: dict[tuple[str, str], LedgerRecord] = {}

    def record_many(self, workflow_id: str, records: Mapping[str, LedgerRecord]) -> None:
        for task_id, record in records.items():
            self._records[(workflow_id, task_id)] = record

    def last(self, workflow_id: str, task_id: str) -> LedgerRecord | None:
        return self._records.get((workflow_id, task_id))


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
