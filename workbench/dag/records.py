"""The execution record: what happened to a workflow and each of its tasks."""

from __future__ import annotations

import time
from typing import Any

from pydantic import BaseModel, Field

from workbench.dag.states import TaskState, WorkflowStatus


def elapsed_s(started_at: float | None, finished_at: float | None) -> float | None:
    """Seconds from start to finish, or to now while still running; None before the start."""
    if started_at is None:
        return None
    end = finished_at if finished_at is not None else time.time()
    return max(0.0, end - started_at)


class TaskRecord(BaseModel):
    task_id: str
    task_type: str
    state: TaskState = TaskState.PENDING
    attempts: int = 0
    started_at: float | None = None
    finished_at: float | None = None
    worker: str | None = None
    progress: float = 0.0
    message: str = ""
    error: str | None = None
    traceback: str | None = None
    metrics: dict[str, float] = Field(default_factory=dict)
    artifacts: dict[str, str] = Field(default_factory=dict)
    summary: dict[str, Any] = Field(default_factory=dict)

    @property
    def duration_s(self) -> float | None:
        return elapsed_s(self.started_at, self.finished_at)


class ExecutionError(BaseModel):
    """The root cause of a failed workflow."""

    task_id: str | None
    message: str
    traceback: str | None = None


class WorkflowExecution(BaseModel):
    execution_id: str
    workflow_id: str
    name: str
    status: WorkflowStatus = WorkflowStatus.PENDING
    tasks: dict[str, TaskRecord]
    submitted_at: float = Field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    error: ExecutionError | None = None

    @property
    def duration_s(self) -> float | None:
        return elapsed_s(self.started_at, self.finished_at)

    @property
    def progress(self) -> float:
        """Fraction of the workflow done: finished tasks count 1, running ones their progress."""
        if not self.tasks:
            return 1.0
        done = sum(1.0 if t.state.terminal else t.progress for t in self.tasks.values())
        return done / len(self.tasks)

    @property
    def metrics(self) -> dict[str, dict[str, float]]:
        return {tid: dict(t.metrics) for tid, t in self.tasks.items() if t.metrics}

    def counts(self) -> dict[TaskState, int]:
        counts: dict[TaskState, int] = {}
        for task in self.tasks.values():
            counts[task.state] = counts.get(task.state, 0) + 1
        return counts

    def to_summary(self) -> dict[str, Any]:
        """The `workbench run --json` shape."""
        return {
            "execution_id": self.execution_id,
            "workflow_id": self.workflow_id,
            "status": self.status.value,
            "duration_s": self.duration_s,
            "error": self.error.model_dump() if self.error else None,
            "tasks": {
                tid: {
                    "status": t.state.value,
                    "attempts": t.attempts,
                    "duration_s": t.duration_s,
                    "worker": t.worker,
                    "error": t.error,
                }
                for tid, t in self.tasks.items()
            },
            "metrics": self.metrics,
        }
