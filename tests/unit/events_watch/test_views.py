"""`advance` and `merge`: views that only move forward, and updates that stay as they were."""

from __future__ import annotations

from tests.unit.events_watch.fakes import (
    event,
    execution,
    finished,
    progress,
    started,
    succeeded,
)
from workbench.dag.states import TaskState, WorkflowStatus
from workbench.events.models import EventType
from workbench.events.views import advance, merge

R, S, P = TaskState.RUNNING, TaskState.SUCCEEDED, TaskState.PENDING


def test_advance_returns_a_new_view_and_leaves_the_old_one_and_untouched_records_alone():
    before = execution(a=P, b=P)
    after = advance(before, started(1, "a", data={"worker": "w1"}))
    assert after is not before
    assert before.tasks["a"].state is P and after.tasks["a"].state is R
    assert after.tasks["b"] is before.tasks["b"]  # shared: the event did not touch it
    again = advance(after, event(2, EventType.TASK_METRIC, "a", metrics={"loss": 0.3}))
    assert after.tasks["a"].metrics == {} and again.tasks["a"].metrics == {"loss": 0.3}
    done = advance(again, finished(3, "failed", data={"error": {"task_id": "a", "message": "m"}}))
    assert again.status is WorkflowStatus.RUNNING and done.status is WorkflowStatus.FAILED
    assert done.error is not None and done.error.message == "m"


def test_advance_ignores_what_would_go_backwards_and_what_it_cannot_read():
    view = execution(a=S, b=R)
    for stale in (
        started(5, "a"),  # a finished task takes no more events
        progress(6, "a", 0.1),
        event(7, EventType.TASK_QUEUED, "b", status="submitted"),  # b already runs
        event(8, EventType.TASK_STARTED, "b", status="no-such-state"),
        event(9, EventType.TASK_STARTED, "nope", status="running"),
        event(10, EventType.TRIAL_STARTED, "b", status="running"),
        event(11, EventType.WORKFLOW_STARTED, status="pending"),
    ):
        assert advance(view, stale) is view
    retrying = advance(view, event(12, EventType.TASK_RETRYING, "b", status="retrying"))
    assert retrying.tasks["b"].state is TaskState.RETRYING  # running <-> retrying: both ways
    assert advance(retrying, started(13, "b")).tasks["b"].state is R
    over = execution(status=WorkflowStatus.SUCCEEDED, a=S, b=S)
    assert advance(over, event(14, EventType.WORKFLOW_STARTED, status="running")) is over
    assert advance(over, finished(15, "failed")) is over


def test_merge_takes_the_snapshot_except_where_the_view_is_further_along():
    view = advance(execution(a=R, b=R), succeeded(1, "a", metrics={"f1": 0.9}))
    snapshot = execution(a=R, b=S)
    merged = merge(view, snapshot)
    assert {t: r.state for t, r in merged.tasks.items()} == {"a": S, "b": S}
    assert merged.tasks["a"].metrics == {"f1": 0.9}
    assert merge(None, snapshot) is snapshot
    assert merge(execution(a=R, b=R), snapshot) is snapshot
    ended = execution(status=WorkflowStatus.CANCELLED, a=S, b=S)
    assert merge(ended, snapshot).status is WorkflowStatus.CANCELLED
    # a terminal state in the store wins over another terminal state in the view
    cached = execution(a=TaskState.CACHED, b=S)
    assert merge(view, cached).tasks["a"].state is TaskState.CACHED
