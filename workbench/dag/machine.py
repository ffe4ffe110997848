"""The pure execution state machine: inputs in, instructions out. No Dask, no I/O, no clock.

The whole DAG is handed to the cluster at start (futures feed futures), so Dask starts each task
the moment its inputs exist, with no round trip to the orchestrator between layers. The machine
then follows what the workers report and decides what a failure or a cancel means.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from workbench.dag.records import ExecutionError, WorkflowExecution
from workbench.dag.states import TaskState, WorkflowStatus, check_transition

# -- inputs ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CacheHit:
    """A task whose result is in the cache: what its record shows instead of a run."""

    key: str
    metrics: Mapping[str, float] = field(default_factory=dict)
    artifacts: Mapping[str, str] = field(default_factory=dict)
    summary: Mapping[str, Any] = field(default_factory=dict)
    source_execution: str | None = None  # the execution that computed it


@dataclass(frozen=True)
class Start:
    at: float
    cached: Mapping[str, CacheHit] = field(default_factory=dict)


@dataclass(frozen=True)
class Reject:
    """The workflow cannot be placed on the cluster (e.g. a resource no worker has)."""

    errors: Mapping[str, str]
    at: float


@dataclass(frozen=True)
class TaskStarted:
    task_id: str
    attempt: int
    worker: str | None
    at: float


@dataclass(frozen=True)
class TaskProgress:
    task_id: str
    fraction: float
    message: str = ""


@dataclass(frozen=True)
class TaskMetric:
    task_id: str
    name: str
    value: float
    step: int | None = None


@dataclass(frozen=True)
class TaskRetrying:
    task_id: str
    attempt: int
    error: str
    delay_s: float


@dataclass(frozen=True)
class TaskSucceeded:
    task_id: str
    at: float
    metrics: Mapping[str, float] = field(default_factory=dict)
    artifacts: Mapping[str, str] = field(default_factory=dict)
    summary: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TaskFailed:
    task_id: str
    error: str
    at: float
    traceback: str | None = None


@dataclass(frozen=True)
class CancelRequested:
    at: float
    reason: str = "cancelled by the user"


Input = (
    Start
    | Reject
    | TaskStarted
    | TaskProgress
    | TaskMetric
    | TaskRetrying
    | TaskSucceeded
    | TaskFailed
    | CancelRequested
)

# -- instructions ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SubmitTasks:
    task_ids: tuple[str, ...]  # in topological order: each task's inputs come before it


@dataclass(frozen=True)
class CancelTasks:
    task_ids: tuple[str, ...]


class NoticeKind(StrEnum):
    WORKFLOW = "workflow"  # the workflow's status changed
    TASK_STATE = "task_state"
    TASK_PROGRESS = "task_progress"
    TASK_METRIC = "task_metric"


@dataclass(frozen=True)
class Notify:
    """Something observers should hear about; the executor turns it into an Event."""

    kind: NoticeKind
    task_id: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Finished:
    status: WorkflowStatus


Instruction = SubmitTasks | CancelTasks | Notify | Finished


class DAGStateMachine:
    def __init__(
        self,
        execution: WorkflowExecution,
        dependencies: Mapping[str, Sequence[str]],
        order: Sequence[str],
    ) -> None:
        self.execution = execution
        self._order = list(order)
        self._dependents: dict[str, list[str]] = {tid: [] for tid in order}
        for tid, deps in dependencies.items():
            for dep in deps:
                self._dependents[dep].append(tid)
        self._open = len(self._order)  # tasks not yet in a terminal state

    @property
    def order(self) -> list[str]:
        """The tasks in topological order."""
        return list(self._order)

    @property
    def finished(self) -> bool:
        return self.execution.status.terminal

    def handle(self, event: Input) -> list[Instruction]:
        if self.finished and not isinstance(event, TaskProgress | TaskMetric):
            return []
        match event:
            case Start():
                return self._start(event)
            case Reject():
                return self._reject(event)
            case TaskStarted():
                return self._started(event)
            case TaskProgress():
                return self._progress(event)
            case TaskMetric():
                return self._metric(event)
            case TaskRetrying():
                return self._retrying(event)
            case TaskSucceeded():
                return self._succeeded(event)
            case TaskFailed():
                return self._failed(event)
            case CancelRequested():
                return self._cancel(event)
        raise TypeError(f"unknown input {event!r}")

    # -- handlers ------------------------------------------------------------------------------
    def _start(self, event: Start) -> list[Instruction]:
        self.execution.status = WorkflowStatus.RUNNING
        self.execution.started_at = event.at
        out: list[Instruction] = [self._workflow_notice()]
        to_run = tuple(tid for tid in self._order if tid not in event.cached)
        if to_run:
            out.append(SubmitTasks(to_run))
        for tid in self._order:
            hit = event.cached.get(tid)
            if hit is None:
                out.append(self._move(tid, TaskState.SUBMITTED))
            else:
                out.append(self._cached(tid, hit, event.at))
        return out + self._maybe_finish(event.at)

    def _cached(self, task_id: str, hit: CacheHit, at: float) -> Notify:
        record = self.execution.tasks[task_id]
        record.metrics = dict(hit.metrics)
        record.artifacts.update(hit.artifacts)
        record.summary.update(hit.summary)
        record.summary["cache_key"] = hit.key
        if hit.source_execution:
            record.summary["cached_from"] = hit.source_execution
        record.progress = 1.0
        record.started_at = record.finished_at = at
        return self._move(
            task_id,
            TaskState.CACHED,
            metrics=dict(record.metrics),
            key=hit.key,
            source_execution=hit.source_execution,
        )

    def _reject(self, event: Reject) -> list[Instruction]:
        out: list[Instruction] = []
        for tid in self._order:
            if tid in event.errors:
                record = self.execution.tasks[tid]
                record.error = event.errors[tid]
                out.append(self._move(tid, TaskState.FAILED, at=event.at, error=record.error))
            else:
                out.append(self._skip(tid, "the workflow was rejected at submission", event.at))
        first = next(iter(event.errors.items()))
        self._set_root_cause(first[0], first[1], None)
        return out + self._finish(event.at, WorkflowStatus.FAILED)

    def _started(self, event: TaskStarted) -> list[Instruction]:
        record = self.execution.tasks[event.task_id]
        if record.state not in (TaskState.SUBMITTED, TaskState.RETRYING):
            return []  # late or duplicate report of a task already settled
        record.attempts = max(record.attempts, event.attempt)
        record.worker = event.worker
        if record.started_at is None:
            record.started_at = event.at
        return [
            self._move(event.task_id, TaskState.RUNNING, attempt=event.attempt, worker=event.worker)
        ]

    def _progress(self, event: TaskProgress) -> list[Instruction]:
        record = self.execution.tasks[event.task_id]
        if record.state is not TaskState.RUNNING:
            return []
        record.progress = event.fraction
        record.message = event.message
        data = {"progress": event.fraction, "message": event.message}
        return [Notify(NoticeKind.TASK_PROGRESS, event.task_id, data)]

    def _metric(self, event: TaskMetric) -> list[Instruction]:
        record = self.execution.tasks[event.task_id]
        if record.state.terminal:
            return []
        record.metrics[event.name] = event.value
        data = {"name": event.name, "value": event.value, "step": event.step}
        return [Notify(NoticeKind.TASK_METRIC, event.task_id, data)]

    def _retrying(self, event: TaskRetrying) -> list[Instruction]:
        record = self.execution.tasks[event.task_id]
        if record.state is not TaskState.RUNNING:
            return []
        record.error = event.error
        record.progress = 0.0
        return [
            self._move(
                event.task_id,
                TaskState.RETRYING,
                attempt=event.attempt,
                error=event.error,
                delay_s=event.delay_s,
            )
        ]

    def _succeeded(self, event: TaskSucceeded) -> list[Instruction]:
        record = self.execution.tasks[event.task_id]
        if record.state.terminal:
            return []
        out: list[Instruction] = []
        if record.state is TaskState.SUBMITTED:
            # The start report can trail the result; record the run so history stays whole.
            out += self._started(
                TaskStarted(event.task_id, max(1, record.attempts), None, event.at)
            )
        # The result's metrics are the truth; values logged while running were progress.
        record.metrics = dict(event.metrics)
        record.artifacts.update(event.artifacts)
        record.summary.update(event.summary)
        record.error = None
        record.progress = 1.0
        record.finished_at = event.at
        out.append(self._move(event.task_id, TaskState.SUCCEEDED, metrics=dict(record.metrics)))
        return out + self._maybe_finish(event.at)

    def _failed(self, event: TaskFailed) -> list[Instruction]:
        record = self.execution.tasks[event.task_id]
        if record.state.terminal:
            return []
        record.error = event.error
        record.traceback = event.traceback
        record.finished_at = event.at
        record.attempts = max(record.attempts, 1)
        out: list[Instruction] = [self._move(event.task_id, TaskState.FAILED, error=event.error)]
        self._set_root_cause(event.task_id, event.error, event.traceback)
        doomed = [tid for tid in self._descendants(event.task_id) if not self._state(tid).terminal]
        reason = f"upstream task {event.task_id!r} failed"
        for tid in doomed:
            out.append(self._skip(tid, reason, event.at))
        if doomed:
            out.append(CancelTasks(tuple(doomed)))
        return out + self._maybe_finish(event.at)

    def _cancel(self, event: CancelRequested) -> list[Instruction]:
        live = [tid for tid in self._order if not self._state(tid).terminal]
        out: list[Instruction] = []
        for tid in live:
            self.execution.tasks[tid].finished_at = event.at
            out.append(self._move(tid, TaskState.CANCELLED, reason=event.reason))
        if live:
            out.append(CancelTasks(tuple(live)))
        if self.execution.error is None:
            self.execution.error = ExecutionError(task_id=None, message=event.reason)
        return out + self._finish(event.at, WorkflowStatus.CANCELLED)

    # -- helpers -------------------------------------------------------------------------------
    def _state(self, task_id: str) -> TaskState:
        return self.execution.tasks[task_id].state

    def _move(self, task_id: str, target: TaskState, **data: Any) -> Notify:
        record = self.execution.tasks[task_id]
        check_transition(task_id, record.state, target)
        record.state = target
        if target.terminal:
            self._open -= 1
        return Notify(NoticeKind.TASK_STATE, task_id, {"state": target, **data})

    def _skip(self, task_id: str, reason: str, at: float) -> Notify:
        record = self.execution.tasks[task_id]
        record.message = reason
        record.finished_at = at
        return self._move(task_id, TaskState.SKIPPED, reason=reason)

    def _descendants(self, task_id: str) -> list[str]:
        seen: set[str] = set()
        queue = deque(self._dependents[task_id])
        while queue:
            tid = queue.popleft()
            if tid not in seen:
                seen.add(tid)
                queue.extend(self._dependents[tid])
        return [tid for tid in self._order if tid in seen]

    def _set_root_cause(self, task_id: str, message: str, traceback: str | None) -> None:
        if self.execution.error is None:
            self.execution.error = ExecutionError(
                task_id=task_id, message=message, traceback=traceback
            )

    def _maybe_finish(self, at: float) -> list[Instruction]:
        if self._open:
            return []
        failed = any(t.state is TaskState.FAILED for t in self.execution.tasks.values())
        return self._finish(at, WorkflowStatus.FAILED if failed else WorkflowStatus.SUCCEEDED)

    def _finish(self, at: float, status: WorkflowStatus) -> list[Instruction]:
        self.execution.status = status
        self.execution.finished_at = at
        return [self._workflow_notice(), Finished(status)]

    def _workflow_notice(self) -> Notify:
        return Notify(NoticeKind.WORKFLOW, None, {"status": self.execution.status})
