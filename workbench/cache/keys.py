"""Cache keys: a content address over everything that decides a task's result.

A key covers the task type, the implementation (code digest and library versions), the
canonical parameters, the global parameters the task reads, the keys of its upstream results
(a Merkle chain: a change anywhere upstream changes every key below it) and the content of its
input files. It leaves out what cannot change the result: task ids, key order in mappings,
where the workflow file lives, retries, timeouts and resources.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

# Bump when the key recipe changes, so old entries stop matching instead of being misread.
KEY_VERSION = 1


def canonical_json(value: Any) -> str:
    """One text per value: sorted keys, no whitespace, so reordering a mapping changes nothing."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


@dataclass(frozen=True)
class KeyInputs:
    """Everything a task's key is made of, kept whole so a miss can be explained later."""

    task_type: str
    code: str  # digest of the task function and the in-project helpers it reaches
    functions: Mapping[str, str] = field(default_factory=dict)  # "module:qualname" -> digest
    libraries: Mapping[str, str] = field(default_factory=dict)  # distribution -> version
    params: Mapping[str, Any] = field(default_factory=dict)
    globals: Mapping[str, Any] = field(default_factory=dict)  # only those the task reads
    upstream: Mapping[str, str] = field(default_factory=dict)  # upstream task id -> its key
    files: Mapping[str, str] = field(default_factory=dict)  # parameter -> content digest

    def key(self) -> str:
        material = {
            "v": KEY_VERSION,
            "task_type": self.task_type,
            "code": self.code,
            "libraries": dict(self.libraries),
            "params": dict(self.params),
            "globals": dict(self.globals),
            # Upstream ids are left out on purpose: renaming a task must not change its
            # dependents' keys. Their keys, as a sorted multiset, carry the content.
            "upstream": sorted(self.upstream.values()),
            "files": dict(self.files),
        }
        return hashlib.sha256(canonical_json(material).encode()).hexdigest()

    def to_json(self) -> dict[str, Any]:
        return {
            "task_type": self.task_type,
            "code": self.code,
            "functions": dict(self.functions),
            "libraries": dict(self.libraries),
            "params": dict(self.params),
            "globals": dict(self.globals),
            "upstream": dict(self.upstream),
            "files": dict(self.files),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> KeyInputs:
        return cls(
            task_type=str(data["task_type"]),
            code=str(data["code"]),
            functions=dict(data.get("functions", {})),
            libraries=dict(data.get("libraries", {})),
            params=dict(data.get("params", {})),
            globals=dict(data.get("globals", {})),
            upstream=dict(data.get("upstream", {})),
            files=dict(data.get("files", {})),
        )


class ChangeKind(StrEnum):
    TASK_TYPE = "task type"
    PARAMETER = "parameter"
    GLOBAL_PARAMETER = "global parameter"
    UPSTREAM = "upstream result"
    DATA_FILE = "data file"
    CODE = "code"
    LIBRARY = "library version"


@dataclass(frozen=True)
class Change:
    kind: ChangeKind
    name: str
    before: Any = None
    after: Any = None

    def describe(self) -> str:
        match self.kind:
            case ChangeKind.UPSTREAM:
                return f"upstream result of {self.name!r} changed"
            case ChangeKind.DATA_FILE:
                digests = f"{_short(self.before)} -> {_short(self.after)}"
                return f"data file in {self.name!r} changed ({digests})"
            case ChangeKind.CODE:
                return f"code of {self.name} changed"
        return f"{self.kind.value} {self.name!r}: {_show(self.before)} -> {_show(self.after)}"


def changes_between(before: KeyInputs, after: KeyInputs) -> list[Change]:
    """What differs between two recipes of the same task, most specific first."""
    found: list[Change] = []
    if before.task_type != after.task_type:
        found.append(Change(ChangeKind.TASK_TYPE, "task_type", before.task_type, after.task_type))
    found += _mapping_changes(ChangeKind.PARAMETER, before.params, after.params)
    found += _mapping_changes(ChangeKind.GLOBAL_PARAMETER, before.globals, after.globals)
    found += _mapping_changes(ChangeKind.DATA_FILE, before.files, after.files)
    found += _mapping_changes(ChangeKind.UPSTREAM, before.upstream, after.upstream)
    found += _mapping_changes(ChangeKind.LIBRARY, before.libraries, after.libraries)
    code = _mapping_changes(ChangeKind.CODE, before.functions, after.functions)
    if not code and before.code != after.code:
        code = [Change(ChangeKind.CODE, after.task_type, before.code, after.code)]
    return found + code


def _mapping_changes(
    kind: ChangeKind, before: Mapping[str, Any], after: Mapping[str, Any]
) -> list[Change]:
    missing = object()
    out = []
    for name in sorted(set(before) | set(after)):
        old, new = before.get(name, missing), after.get(name, missing)
        if canonical_json(old if old is not missing else None) != canonical_json(
            new if new is not missing else None
        ) or (old is missing) != (new is missing):
            out.append(
                Change(kind, name, None if old is missing else old, None if new is missing else new)
            )
    return out


def _show(value: Any) -> str:
    return "(unset)" if value is None else canonical_json(value)


def _short(digest: Any) -> str:
    return "(none)" if digest is None else str(digest)[:12]
