"""Task and workflow states, and which task transitions are allowed."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from workbench.errors import WorkbenchError


class TaskState(StrEnum):
    PENDING = "pending"  # not handed to the cluster yet
    SUBMITTED = "submitted"  # handed to Dask, waiting for inputs or a worker
    RUNNING = "running"
    RETRYING = "retrying"  # an attempt failed; waiting out the backoff before the next
    SUCCEEDED = "succeeded"
    CACHED = "cached"  # its result came from the cache; the task body did not run
    FAILED = "failed"
    SKIPPED = "skipped"  # an upstream task failed, so this one cannot run
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_TASK_STATES

    @property
    def succeeded(self) -> bool:
        """It has a result: computed now, or taken from the cache."""
        return self in (TaskState.SUCCEEDED, TaskState.CACHED)


TERMINAL_TASK_STATES = frozenset(
    {
        TaskState.SUCCEEDED,
        TaskState.CACHED,
        TaskState.FAILED,
        TaskState.SKIPPED,
        TaskState.CANCELLED,
    }
)

ALLOWED_TRANSITIONS: dict[TaskState, frozenset[TaskState]] = {
    TaskState.PENDING: frozenset(
        {
            TaskState.SUBMITTED,
            TaskState.CACHED,
            TaskState.FAILED,
            TaskState.SKIPPED,
            TaskState.CANCELLED,
        }
    ),
    TaskState.SUBMITTED: frozenset(
        {TaskState.RUNNING, TaskState.FAILED, TaskState.SKIPPED, TaskState.CANCELLED}
    ),
    TaskState.RUNNING: frozenset(
        {TaskState.SUCCEEDED, TaskState.FAILED, TaskState.RETRYING, TaskState.CANCELLED}
    ),
    TaskState.RETRYING: frozenset({TaskState.RUNNING, TaskState.FAILED, TaskState.CANCELLED}),
    TaskState.SUCCEEDED: frozenset(),
    TaskState.CACHED: frozenset(),
    TaskState.FAILED: frozenset(),
    TaskState.SKIPPED: frozenset(),
    TaskState.CANCELLED: frozenset(),
}


class WorkflowStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in (WorkflowStatus.SUCCEEDED, WorkflowStatus.FAILED, WorkflowStatus.CANCELLED)


class InvalidTransitionError(WorkbenchError):
    def __init__(self, task_id: str, current: TaskState, target: TaskState) -> None:
        super().__init__(
            f"task {task_id!r} cannot go from {current.value} to {target.value}; "
            "this is a bug in Workbench, please report it with the execution's events"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (WorkbenchError, (str(self),))


def check_transition(task_id: str, current: TaskState, target: TaskState) -> None:
    if target not in ALLOWED_TRANSITIONS[current]:
        raise InvalidTransitionError(task_id, current, target)
