"""Views of executions that only move forward, whatever order events and snapshots come in."""

from __future__ import annotations

import logging
from typing import Any

from workbench.dag.records import WorkflowExecution
from workbench.dag.states import TaskState, WorkflowStatus
from workbench.events.models import Event, EventType
from workbench.events.replay import apply_event

log = logging.getLogger(__name__)

_TASK_RANK = {TaskState.PENDING: 0, TaskState.SUBMITTED: 1, TaskState.RUNNING: 2}
_TASK_RANK[TaskState.RETRYING] = 2  # running and retrying alternate: neither is behind


def _task_rank(state: TaskState) -> int:
    return 3 if state.terminal else _TASK_RANK[state]


def _status_rank(status: WorkflowStatus) -> int:
    return 2 if status.terminal else int(status is WorkflowStatus.RUNNING)


def advance(execution: WorkflowExecution, event: Event) -> WorkflowExecution:
    """`execution` after `event`, never moved backwards: a state older than the one shown (a
    stale event after a snapshot, a late one from a previous owner) is ignored, and a finished
    task or workflow takes no more events. Returns a new object (or `execution` itself when
    nothing applies) sharing the task records the event does not touch."""
    try:
        if event.type in (EventType.WORKFLOW_STARTED, EventType.WORKFLOW_FINISHED):
            if execution.status.terminal or (
                event.status is not None
                and _status_rank(WorkflowStatus(event.status)) < _status_rank(execution.status)
            ):
                return execution
            moved = execution.model_copy()
            apply_event(moved, event)
            return moved
        record = execution.tasks.get(event.task_id or "")
        if not event.type.value.startswith("task.") or record is None or record.state.terminal:
            return execution
        stateless = event.type in (EventType.TASK_PROGRESS, EventType.TASK_METRIC)
        if (
            not stateless
            and event.status is not None
            and _task_rank(TaskState(event.status)) < _task_rank(record.state)
        ):
            return execution
        # apply_event replaces every field it changes except metrics, which it updates: a
        # shallow copy with its own metrics is enough (a deep copy per event costs the most).
        fresh = record.model_copy(update={"metrics": dict(record.metrics)})
        moved = execution.model_copy(update={"tasks": {**execution.tasks, fresh.task_id: fresh}})
        apply_event(moved, event)
        return moved
    except ValueError as exc:  # an unknown status or a malformed error: skip, never crash
        log.warning(
            "ignoring event %s seq %d of %s: %s", event.type, event.seq, event.execution_id, exc
        )
        return execution


def merge(view: WorkflowExecution | None, snapshot: WorkflowExecution) -> WorkflowExecution:
    """The snapshot, except where `view` is further along: the store commits a task's success
    only once its checkpoint is stored, so a snapshot can lag the events already shown."""
    if view is None:
        return snapshot
    tasks = dict(snapshot.tasks)
    update: dict[str, Any] = {}
    for task_id, record in view.tasks.items():
        theirs = tasks.get(task_id)
        if theirs is not None and _task_rank(record.state) > _task_rank(theirs.state):
            tasks[task_id] = record
            update["tasks"] = tasks
    if _status_rank(view.status) > _status_rank(snapshot.status):
        fields = ("status", "started_at", "finished_at", "error")
        update.update({name: getattr(view, name) for name in fields})
    return snapshot.model_copy(update=update) if update else snapshot
