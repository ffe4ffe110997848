"""The execution state machine, driven by hand: no Dask, no clock."""

from __future__ import annotations

import pytest

from workbench.dag.machine import (
    CancelRequested,
    CancelTasks,
    DAGStateMachine,
    Finished,
    NoticeKind,
    Notify,
    Reject,
    Start,
    SubmitTasks,
    TaskFailed,
    TaskMetric,
    TaskProgress,
    TaskRetrying,
    TaskStarted,
    TaskSucceeded,
)
from workbench.dag.records import TaskRecord, WorkflowExecution
from workbench.dag.states import (
    ALLOWED_TRANSITIONS,
    InvalidTransitionError,
    TaskState,
    WorkflowStatus,
    check_transition,
)

# a -> b -> d, a -> c, e independent
DEPS = {"a": [], "b": ["a"], "c": ["a"], "d": ["b"], "e": []}
ORDER = ["a", "b", "c", "d", "e"]


def machine(deps=DEPS, order=ORDER) -> DAGStateMachine:
    execution = WorkflowExecution(
        execution_id="x1",
        workflow_id="wf",
        name="wf",
        tasks={t: TaskRecord(task_id=t, task_type="noop") for t in order},
    )
    return DAGStateMachine(execution, deps, order)


def states(m: DAGStateMachine) -> dict[str, TaskState]:
    return {tid: rec.state for tid, rec in m.execution.tasks.items()}


def finish(m: DAGStateMachine, tid: str, at: float = 2.0) -> list:
    m.handle(TaskStarted(tid, 1, "w1", at - 1))
    return m.handle(TaskSucceeded(tid, at, {"score": 1.0}))


def test_start_submits_every_task_in_topological_order():
    m = machine()
    out = m.handle(Start(0.0))
    submits = [i for i in out if isinstance(i, SubmitTasks)]
    assert submits == [SubmitTasks(tuple(ORDER))]
    assert set(states(m).values()) == {TaskState.SUBMITTED}
    assert m.execution.status is WorkflowStatus.RUNNING


def test_all_succeed_finishes_succeeded_with_metrics_and_durations():
    m = machine()
    m.handle(Start(0.0))
    out: list = []
    for tid in ORDER:
        out = finish(m, tid)
    assert out[-1] == Finished(WorkflowStatus.SUCCEEDED)
    assert m.execution.status is WorkflowStatus.SUCCEEDED
    assert m.execution.tasks["a"].duration_s == pytest.approx(1.0)
    assert m.execution.metrics["d"] == {"score": 1.0}
    assert m.execution.progress == 1.0


def test_failure_skips_descendants_with_reason_and_keeps_independent_branches():
    m = machine()
    m.handle(Start(0.0))
    finish(m, "a")
    m.handle(TaskStarted("b", 1, "w1", 3.0))
    out = m.handle(TaskFailed("b", "ValueError: boom", 4.0, "Traceback ..."))
    assert CancelTasks(("d",)) in out
    assert states(m)["d"] is TaskState.SKIPPED
    assert m.execution.tasks["d"].message == "upstream task 'b' failed"
    assert states(m)["c"] is TaskState.SUBMITTED  # independent of b: keeps going
    assert not m.finished
    finish(m, "c")
    out = finish(m, "e")
    assert out[-1] == Finished(WorkflowStatus.FAILED)
    assert m.execution.error is not None
    assert m.execution.error.task_id == "b"
    assert m.execution.error.traceback == "Traceback ..."


def test_retry_then_success_counts_attempts():
    m = machine({"a": []}, ["a"])
    m.handle(Start(0.0))
    m.handle(TaskStarted("a", 1, "w1", 1.0))
    out = m.handle(TaskRetrying("a", 1, "OSError: flaky", 0.5))
    notice = next(i for i in out if isinstance(i, Notify))
    assert notice.data["state"] is TaskState.RETRYING
    assert notice.data["delay_s"] == 0.5
    m.handle(TaskStarted("a", 2, "w2", 2.0))
    m.handle(TaskSucceeded("a", 3.0))
    record = m.execution.tasks["a"]
    assert record.attempts == 2
    assert record.worker == "w2"
    assert record.started_at == 1.0  # the first attempt's start
    assert record.error is None


def test_progress_and_metrics_only_while_running():
    m = machine({"a": []}, ["a"])
    m.handle(Start(0.0))
    assert m.handle(TaskProgress("a", 0.5, "half")) == []  # not started yet
    m.handle(TaskStarted("a", 1, "w1", 1.0))
    out = m.handle(TaskProgress("a", 0.5, "half"))
    assert out == [Notify(NoticeKind.TASK_PROGRESS, "a", {"progress": 0.5, "message": "half"})]
    assert m.execution.progress == 0.5
    m.handle(TaskMetric("a", "loss", 0.3, 7))
    assert m.execution.tasks["a"].metrics == {"loss": 0.3}


def test_success_report_before_start_report_is_accepted():
    m = machine({"a": []}, ["a"])
    m.handle(Start(0.0))
    out = m.handle(TaskSucceeded("a", 2.0))
    kinds = [i.data.get("state") for i in out if isinstance(i, Notify) and i.task_id == "a"]
    assert kinds == [TaskState.RUNNING, TaskState.SUCCEEDED]
    assert m.execution.status is WorkflowStatus.SUCCEEDED


def test_late_and_duplicate_reports_are_ignored():
    m = machine({"a": [], "b": []}, ["a", "b"])
    m.handle(Start(0.0))
    finish(m, "a")
    assert m.handle(TaskStarted("a", 1, "w1", 5.0)) == []
    assert m.handle(TaskSucceeded("a", 5.0)) == []
    assert m.handle(TaskFailed("a", "late", 5.0)) == []
    assert states(m)["a"] is TaskState.SUCCEEDED


def test_cancel_cancels_every_live_task_and_finishes_cancelled():
    m = machine()
    m.handle(Start(0.0))
    finish(m, "a")
    out = m.handle(CancelRequested(3.0))
    assert CancelTasks(("b", "c", "d", "e")) in out
    assert out[-1] == Finished(WorkflowStatus.CANCELLED)
    assert states(m)["a"] is TaskState.SUCCEEDED
    assert {states(m)[t] for t in "bcde"} == {TaskState.CANCELLED}
    assert m.handle(TaskSucceeded("b", 4.0)) == []  # nothing changes after the end


def test_reject_fails_the_unplaceable_task_and_skips_the_rest():
    m = machine()
    out = m.handle(Reject({"c": "needs GPU=1"}, 0.0))
    assert not any(isinstance(i, SubmitTasks) for i in out)
    assert states(m)["c"] is TaskState.FAILED
    assert {states(m)[t] for t in "abde"} == {TaskState.SKIPPED}
    assert m.execution.status is WorkflowStatus.FAILED
    assert m.execution.error is not None and m.execution.error.message == "needs GPU=1"


def test_transition_table_rejects_leaving_terminal_states():
    for state in TaskState:
        if state.terminal:
            assert ALLOWED_TRANSITIONS[state] == frozenset()
    with pytest.raises(InvalidTransitionError, match="cannot go from succeeded to running"):
        check_transition("a", TaskState.SUCCEEDED, TaskState.RUNNING)


def test_wide_dag_failure_skips_all_descendants_once():
    width, layers = 10, 50
    order = [f"t{layer}-{i}" for layer in range(layers) for i in range(width)]
    deps = {
        f"t{layer}-{i}": [f"t{layer - 1}-{j}" for j in range(width)] if layer else []
        for layer in range(layers)
        for i in range(width)
    }
    m = machine(deps, order)
    m.handle(Start(0.0))
    m.handle(TaskStarted("t0-0", 1, None, 0.5))
    out = m.handle(TaskFailed("t0-0", "boom", 1.0))
    cancels = [i for i in out if isinstance(i, CancelTasks)]
    assert len(cancels) == 1 and len(cancels[0].task_ids) == width * (layers - 1)
    assert sum(1 for s in states(m).values() if s is TaskState.SKIPPED) == width * (layers - 1)


def test_cached_tasks_are_not_submitted_and_count_as_results():
    from workbench.dag.machine import CacheHit

    m = machine()
    hit = CacheHit(key="k" * 64, metrics={"f1": 0.9}, source_execution="wf-1")
    out = m.handle(Start(0.0, {"a": hit, "b": hit}))
    submits = [i for i in out if isinstance(i, SubmitTasks)]
    assert submits == [SubmitTasks(("c", "d", "e"))]
    assert states(m)["a"] is TaskState.CACHED and states(m)["b"] is TaskState.CACHED
    record = m.execution.tasks["a"]
    assert record.metrics == {"f1": 0.9}
    assert record.summary["cached_from"] == "wf-1"
    assert record.summary["cache_key"] == "k" * 64
    cached_notices = [
        i for i in out if isinstance(i, Notify) and i.data.get("state") is TaskState.CACHED
    ]
    assert [n.task_id for n in cached_notices] == ["a", "b"]
    for tid in ("c", "d", "e"):
        finish(m, tid)
    assert m.execution.status is WorkflowStatus.SUCCEEDED


def test_a_run_served_wholly_from_the_cache_finishes_at_start():
    from workbench.dag.machine import CacheHit

    m = machine()
    out = m.handle(Start(0.0, {tid: CacheHit(key=tid) for tid in ORDER}))
    assert not any(isinstance(i, SubmitTasks) for i in out)
    assert out[-1] == Finished(WorkflowStatus.SUCCEEDED)
    assert all(state is TaskState.CACHED for state in states(m).values())


def test_cached_is_terminal():
    assert TaskState.CACHED.terminal and TaskState.CACHED.succeeded
    with pytest.raises(InvalidTransitionError):
        check_transition("a", TaskState.CACHED, TaskState.RUNNING)
