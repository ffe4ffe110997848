"""Execution views rebuilt from events match the orchestrator's own record."""

from __future__ import annotations

from workbench.dag.machine import DAGStateMachine, Start, TaskFailed, TaskStarted
from workbench.dag.records import TaskRecord, WorkflowExecution
from workbench.dag.states import TaskState, WorkflowStatus
from workbench.events.models import Event, EventType
from workbench.events.replay import ExecutionViews


def event(seq: int, kind: EventType, task_id: str | None = None, **fields) -> Event:
    return Event(
        type=kind,
        execution_id="x",
        workflow_id="wf",
        task_id=task_id,
        instance_id="i",
        seq=seq,
        timestamp=100.0 + seq,
        **fields,
    )


def test_a_view_follows_a_run_and_uses_the_workers_clock():
    views = ExecutionViews()
    views.apply(event(1, EventType.WORKFLOW_SUBMITTED, data={"name": "n", "tasks": {"a": "t"}}))
    views.apply(event(2, EventType.WORKFLOW_STARTED, status="running"))
    views.apply(event(3, EventType.TASK_QUEUED, "a", status="submitted"))
    # a short task: start and end published together, carrying the worker's times
    views.apply(
        event(
            4,
            EventType.TASK_STARTED,
            "a",
            status="running",
            data={"attempt": 1, "worker": "w1", "started_at": 10.0},
        )
    )
    views.apply(
        event(
            5,
            EventType.TASK_SUCCEEDED,
            "a",
            status="succeeded",
            metrics={"f1": 0.9},
            data={"finished_at": 12.5},
        )
    )
    execution = views.apply(event(6, EventType.WORKFLOW_FINISHED, status="succeeded"))
    assert execution is not None
    record = execution.tasks["a"]
    assert record.state is TaskState.SUCCEEDED
    assert record.duration_s == 2.5
    assert record.worker == "w1" and record.attempts == 1
    assert record.metrics == {"f1": 0.9}
    assert execution.status is WorkflowStatus.SUCCEEDED


def test_events_of_unknown_executions_are_ignored():
    views = ExecutionViews()
    assert views.apply(event(3, EventType.TASK_QUEUED, "a", status="submitted")) is None


def test_machine_records_and_failure_root_cause_survive_replay():
    execution = WorkflowExecution(
        execution_id="x",
        workflow_id="wf",
        name="wf",
        tasks={"a": TaskRecord(task_id="a", task_type="t")},
    )
    machine = DAGStateMachine(execution, {"a": []}, ["a"])
    machine.handle(Start(1.0))
    machine.handle(TaskStarted("a", 1, "w", 2.0))
    machine.handle(TaskFailed("a", "boom", 3.0, "Traceback"))
    views = ExecutionViews()
    views.apply(event(1, EventType.WORKFLOW_SUBMITTED, data={"tasks": {"a": "t"}}))
    views.apply(event(2, EventType.TASK_FAILED, "a", status="failed", message="boom"))
    views.apply(
        event(
            3,
            EventType.WORKFLOW_FINISHED,
            status="failed",
            data={"error": execution.error.model_dump() if execution.error else None},
        )
    )
    view = views.executions["x"]
    assert view.tasks["a"].error == execution.tasks["a"].error == "boom"
    assert view.error == execution.error
