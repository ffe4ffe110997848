"""Rebuild execution records from events: how every UI keeps its own view of a workflow."""

from __future__ import annotations

from workbench.dag.records import ExecutionError, TaskRecord, WorkflowExecution
from workbench.dag.states import TaskState, WorkflowStatus
from workbench.events.models import Event, EventType


def execution_from_submitted(event: Event) -> WorkflowExecution:
    """A fresh record from a workflow.submitted event, which lists the tasks and their types."""
    tasks = event.data.get("tasks", {})
    return WorkflowExecution(
        execution_id=event.execution_id,
        workflow_id=event.workflow_id,
        name=event.data.get("name", event.workflow_id),
        submitted_at=event.timestamp,
        tasks={tid: TaskRecord(task_id=tid, task_type=kind) for tid, kind in tasks.items()},
    )


def apply_event(execution: WorkflowExecution, event: Event) -> None:
    """Apply one event to a record; events of tasks the record lacks are ignored."""
    if event.type in (EventType.WORKFLOW_STARTED, EventType.WORKFLOW_FINISHED):
        if event.status is not None:
            execution.status = WorkflowStatus(event.status)
        if event.type is EventType.WORKFLOW_STARTED:
            execution.started_at = event.timestamp
        else:
            execution.finished_at = event.timestamp
            error = event.data.get("error")
            if error:
                execution.error = ExecutionError.model_validate(error)
        return
    record = execution.tasks.get(event.task_id or "")
    if record is None:
        return
    if event.type is EventType.TASK_PROGRESS:
        record.progress = event.progress or 0.0
        record.message = event.message or ""
    elif event.type is EventType.TASK_METRIC:
        record.metrics.update(event.metrics)
    elif event.status is not None:
        _apply_state(record, TaskState(event.status), event)


def _apply_state(record: TaskRecord, state: TaskState, event: Event) -> None:
    record.state = state
    attempt = event.data.get("attempt")
    if attempt:
        record.attempts = max(record.attempts, int(attempt))
    if state is TaskState.RUNNING:
        record.worker = event.data.get("worker", record.worker)
        if record.started_at is None:
            record.started_at = event.data.get("started_at", event.timestamp)
    elif state is TaskState.RETRYING:
        record.error = event.message
        record.progress = 0.0
    elif state.terminal:
        record.finished_at = event.data.get("finished_at", event.timestamp)
        if state.succeeded:
            record.progress = 1.0
            record.error = None
            record.metrics = dict(event.metrics)
            if state is TaskState.CACHED:
                record.started_at = record.finished_at
                record.message = "from the cache"
        elif state is TaskState.FAILED:
            record.error = event.message
            record.traceback = event.data.get("traceback", record.traceback)
        else:
            record.message = event.message or ""


class ExecutionViews:
    """Records of every execution seen on a stream of events."""

    def __init__(self) -> None:
        self.executions: dict[str, WorkflowExecution] = {}

    def apply(self, event: Event) -> WorkflowExecution | None:
        if event.type is EventType.WORKFLOW_SUBMITTED:
            self.executions[event.execution_id] = execution_from_submitted(event)
            return self.executions[event.execution_id]
        execution = self.executions.get(event.execution_id)
        if execution is not None:
            apply_event(execution, event)
        return execution
