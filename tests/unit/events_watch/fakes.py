"""A scripted event source and an in-memory store of snapshots, for the watcher's unit tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from workbench.dag.records import TaskRecord, WorkflowExecution
from workbench.dag.states import TaskState, WorkflowStatus
from workbench.errors import ExecutionNotFoundError
from workbench.events.models import SEQ_EPOCH_SHIFT, Event, EventType
from workbench.events.watch import SourceUnavailable, WatchUpdate


def execution(
    execution_id: str = "x",
    status: WorkflowStatus = WorkflowStatus.RUNNING,
    **states: TaskState,
) -> WorkflowExecution:
    return WorkflowExecution(
        execution_id=execution_id,
        workflow_id="wf",
        name="wf",
        status=status,
        submitted_at=1.0,
        tasks={t: TaskRecord(task_id=t, task_type="kind", state=s) for t, s in states.items()},
    )


def event(
    seq: int,
    kind: EventType,
    task_id: str | None = None,
    *,
    execution_id: str = "x",
    **fields: Any,
) -> Event:
    return Event(
        type=kind,
        execution_id=execution_id,
        workflow_id="wf",
        task_id=task_id,
        instance_id="i",
        seq=seq,
        timestamp=100.0 + (seq % 1000),
        **fields,
    )


def epoch(e: int, n: int) -> int:
    """The n-th seq of ownership epoch e."""
    return (e << SEQ_EPOCH_SHIFT) + n


def started(seq: int, task_id: str, **fields: Any) -> Event:
    return event(seq, EventType.TASK_STARTED, task_id, status="running", **fields)


def succeeded(seq: int, task_id: str, **fields: Any) -> Event:
    return event(seq, EventType.TASK_SUCCEEDED, task_id, status="succeeded", **fields)


def progress(seq: int, task_id: str, value: float, **fields: Any) -> Event:
    return event(seq, EventType.TASK_PROGRESS, task_id, progress=value, **fields)


def finished(seq: int, status: str = "succeeded", **fields: Any) -> Event:
    return event(seq, EventType.WORKFLOW_FINISHED, status=status, **fields)


class FakeSnapshots:
    """Executions by id; `down` makes every read fail as an unreachable store would."""

    def __init__(self, *executions: WorkflowExecution, log: list[str] | None = None) -> None:
        self.executions = {e.execution_id: e for e in executions}
        self.calls = 0
        self.down = False
        self.log = log if log is not None else []

    def set(self, *executions: WorkflowExecution) -> None:
        for e in executions:
            self.executions[e.execution_id] = e

    def get(self, execution_id: str) -> WorkflowExecution:
        self._read(f"get {execution_id}")
        if execution_id not in self.executions:
            raise ExecutionNotFoundError(execution_id)
        return self.executions[execution_id].model_copy(deep=True)

    def all(self) -> list[WorkflowExecution]:
        self._read("all")
        return [e.model_copy(deep=True) for e in self.executions.values()]

    def _read(self, what: str) -> None:
        self.calls += 1
        self.log.append(what)
        if self.down:
            raise ConnectionError("store down")


class Feed:
    """What every source it makes reads: one queue of events and errors (an error item is
    raised by the source that takes it). `fail_opens` opens fail before one succeeds."""

    def __init__(self, log: list[str] | None = None) -> None:
        self.queue: asyncio.Queue[Event | BaseException] = asyncio.Queue()
        self.fail_opens = 0
        self.open_attempts = 0
        self.opened = 0
        self.closed = 0
        self.log = log if log is not None else []

    def factory(self) -> ScriptedSource:
        return ScriptedSource(self)

    def push(self, *items: Event | BaseException) -> None:
        for item in items:
            self.queue.put_nowait(item)


class ScriptedSource:
    def __init__(self, feed: Feed) -> None:
        self.feed = feed
        self.held: BaseException | None = None  # met while draining: raised by the next pull

    async def open(self) -> None:
        self.feed.open_attempts += 1
        if self.feed.fail_opens > 0:
            self.feed.fail_opens -= 1
            raise SourceUnavailable("broker down")
        self.feed.opened += 1
        self.feed.log.append("open")

    def __aiter__(self) -> ScriptedSource:
        return self

    async def __anext__(self) -> Event:
        held, self.held = self.held, None
        item = held or await self.feed.queue.get()
        if isinstance(item, BaseException):
            raise item
        return item

    def drain(self) -> list[Event]:
        events: list[Event] = []
        while self.held is None and not self.feed.queue.empty():
            item = self.feed.queue.get_nowait()
            if isinstance(item, BaseException):
                self.held = item
            else:
                events.append(item)
        return events

    async def close(self) -> None:
        self.feed.closed += 1


async def until(condition: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.002)


def run(scenario: Callable[[], Awaitable[None]], timeout: float = 10.0) -> None:
    async def bounded() -> None:
        await asyncio.wait_for(scenario(), timeout)

    asyncio.run(bounded())


def states(update: WatchUpdate) -> dict[str, TaskState]:
    return {tid: record.state for tid, record in update.execution.tasks.items()}
