"""`workbench cache explain`: for every task, its key, whether it would hit, and for a miss
which input changed since the last run of that task."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from workbench.cache.fingerprints import FileFingerprints
from workbench.cache.keys import Change, ChangeKind, changes_between
from workbench.cache.result_cache import ResultCache
from workbench.execution.cache_plan import CacheMode, plan_cache
from workbench.tasks.checks import CheckedWorkflow


class Verdict(StrEnum):
    HIT = "hit"
    MISS = "miss"
    UNCACHED = "not cached"


@dataclass(frozen=True)
class TaskExplanation:
    task_id: str
    task_type: str
    strategy: str
    key: str | None
    verdict: Verdict
    reasons: list[str] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    last_execution: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "task_id": self.task_id,
            "task_type": self.task_type,
            "strategy": self.strategy,
            "key": self.key,
            "verdict": self.verdict.value,
            "reasons": self.reasons,
            "changes": [
                {"kind": c.kind.value, "name": c.name, "before": c.before, "after": c.after}
                for c in self.changes
            ],
            "last_execution": self.last_execution,
        }


def explain_workflow(
    checked: CheckedWorkflow, cache: ResultCache, fingerprints: FileFingerprints
) -> list[TaskExplanation]:
    """Reads the cache and the ledger; runs nothing, stores nothing, counts no hit or miss."""
    plans = plan_cache(checked, CacheMode.USE, cache.settings.default_cache_strategy, fingerprints)
    types = {task.task_id: task.task_type for task in checked.spec.tasks}
    found: dict[str, TaskExplanation] = {}
    for task_id in checked.order:
        plan = plans[task_id]
        strategy = plan.strategy.value
        if plan.key is None or not plan.read:
            found[task_id] = TaskExplanation(
                task_id, types[task_id], strategy, plan.key, Verdict.UNCACHED, [plan.why_not]
            )
            continue
        last = cache.ledger.last(checked.spec.workflow_id, task_id)
        last_execution = last.execution_id if last else ""
        if cache.contains(plan.key, plan.strategy):
            reasons = ["stored" + (f" by {last_execution}" if last_execution else "")]
            found[task_id] = TaskExplanation(
                task_id,
                types[task_id],
                strategy,
                plan.key,
                Verdict.HIT,
                reasons,
                [],
                last_execution,
            )
            continue
        changes: list[Change] = []
        if last is None:
            reasons = ["no earlier run of this task is recorded"]
        elif last.key == plan.key:
            reasons = [
                "same inputs as the last run, but the entry is gone "
                "(evicted, expired, cleared, stored under another strategy, or failed its "
                "integrity check)"
            ]
        else:
            assert plan.inputs is not None
            changes = changes_between(last.inputs, plan.inputs)
            reasons = [_describe(change, found) for change in changes] or [
                "the key recipe changed (a newer Workbench version)"
            ]
        found[task_id] = TaskExplanation(
            task_id,
            types[task_id],
            strategy,
            plan.key,
            Verdict.MISS,
            reasons,
            changes,
            last_execution,
        )
    return [found[task_id] for task_id in checked.order]


def _describe(change: Change, earlier: dict[str, TaskExplanation]) -> str:
    text = change.describe()
    if change.kind is ChangeKind.UPSTREAM and change.name in earlier:
        text += f" (root cause: {_root_cause(earlier[change.name], earlier)})"
    return text


def _root_cause(item: TaskExplanation, earlier: dict[str, TaskExplanation]) -> str:
    """Follow upstream changes up to the task whose own input changed."""
    first = item.changes[0] if item.changes else None
    if first is not None and first.kind is ChangeKind.UPSTREAM and first.name in earlier:
        return _root_cause(earlier[first.name], earlier)
    return f"{item.task_id}: {first.describe() if first else item.reasons[0]}"
