"""Which tasks of a run read or write the cache, under which keys.

Keys are derived before anything runs, in topological order, so each task's key can include
its upstream tasks' keys. Deriving them imports nothing heavy: code is read with `ast`, data
files are hashed once and then remembered by path, size and modification time.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from workbench.cache.code import code_version
from workbench.cache.fingerprints import FileFingerprints
from workbench.cache.keys import KeyInputs
from workbench.spec.models import CacheStrategy, TaskSpec
from workbench.tasks.base import uncached_reason
from workbench.tasks.checks import INPUT_FILE_MARK, CheckedWorkflow


class CacheMode(StrEnum):
    USE = "use"  # read hits, write misses
    REFRESH = "refresh"  # recompute everything and overwrite the entries
    OFF = "off"  # neither read nor write


@dataclass(frozen=True)
class TaskCachePlan:
    task_id: str
    strategy: CacheStrategy
    key: str | None  # None: no key could be derived (see `why_not`)
    inputs: KeyInputs | None
    read: bool
    write: bool
    why_not: str = ""  # why the task neither reads nor writes, when it does not


def plan_cache(
    checked: CheckedWorkflow,
    mode: CacheMode,
    default_strategy: CacheStrategy,
    fingerprints: FileFingerprints,
) -> dict[str, TaskCachePlan]:
    spec = checked.spec
    tasks = {task.task_id: task for task in spec.tasks}
    plans: dict[str, TaskCachePlan] = {}
    for task_id in checked.order:
        task = tasks[task_id]
        strategy = task.cache_strategy or default_strategy
        inputs, problem = _key_inputs(checked, task, plans, fingerprints)
        key = inputs.key() if inputs is not None else None
        exempt = uncached_reason(checked.params[task_id])
        usable = (
            key is not None
            and not exempt
            and strategy is not CacheStrategy.NONE
            and mode is not CacheMode.OFF
        )
        why_not = (
            problem
            or exempt
            or ("caching is off for this run (--no-cache)" if mode is CacheMode.OFF else "")
            or ("cache_strategy is none" if strategy is CacheStrategy.NONE else "")
        )
        plans[task_id] = TaskCachePlan(
            task_id=task_id,
            strategy=strategy,
            key=key,
            inputs=inputs,
            read=usable and mode is CacheMode.USE,
            write=usable,
            why_not="" if usable else why_not,
        )
    fingerprints.save()
    return plans


def _key_inputs(
    checked: CheckedWorkflow,
    task: TaskSpec,
    plans: Mapping[str, TaskCachePlan],
    fingerprints: FileFingerprints,
) -> tuple[KeyInputs | None, str]:
    task_id = task.task_id
    upstream: dict[str, str] = {}
    for dep in dict.fromkeys(task.dependencies):
        dep_key = plans[dep].key
        if dep_key is None:
            return None, f"upstream task {dep!r} has no cache key"
        upstream[dep] = dep_key
    definition = checked.definitions[task_id]
    if definition.fn is None:
        return None, f"task type {task.task_type!r} is not available"
    version = code_version(definition.fn)
    params = checked.params[task_id]
    try:
        files = _input_files(params, checked.base_dir, fingerprints)
    except OSError as exc:
        return None, f"an input file cannot be read: {exc}"
    everything = dict(checked.spec.global_parameters)
    read = version.globals_read
    globals_ = everything if read is None else {k: v for k, v in everything.items() if k in read}
    return (
        KeyInputs(
            task_type=task.task_type,
            code=version.digest,
            functions=dict(version.functions),
            libraries=dict(version.libraries),
            params=params.model_dump(mode="json"),
            globals=globals_,
            upstream=upstream,
            files=files,
        ),
        "",
    )


def _input_files(
    params: BaseModel, base_dir: Path, fingerprints: FileFingerprints
) -> dict[str, str]:
    """Content digests of the files named by parameters marked as input files."""
    found: dict[str, str] = {}
    for name, info in type(params).model_fields.items():
        extra = info.json_schema_extra
        if not (isinstance(extra, dict) and extra.get(INPUT_FILE_MARK)):
            continue
        value: Any = getattr(params, name)
        items = list(enumerate(value)) if isinstance(value, list | tuple) else [(None, value)]
        for index, item in items:
            if not isinstance(item, str | os.PathLike) or "://" in str(item):
                continue
            path = Path(item).expanduser()
            path = path if path.is_absolute() else base_dir / path
            label = name if index is None else f"{name}[{index}]"
            found[label] = fingerprints.fingerprint(path)
    return found
