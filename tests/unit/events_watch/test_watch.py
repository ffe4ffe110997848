"""The watcher against a scripted source and an in-memory store: snapshot first, then events;
duplicates dropped, gaps and new epochs re-snapshotted, never backwards, polling while the
source is away, and the end of a finished execution."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from tests.unit.events_watch.fakes import (
    FakeSnapshots,
    Feed,
    epoch,
    event,
    execution,
    finished,
    progress,
    run,
    started,
    states,
    succeeded,
    until,
)
from workbench.dag.states import TaskState, WorkflowStatus
from workbench.errors import ExecutionNotFoundError
from workbench.events.bus import InProcessBus
from workbench.events.models import EventType
from workbench.events.watch import BusSource, SourceUnavailable, WatchMode, WatchUpdate, watch

R, S, P = TaskState.RUNNING, TaskState.SUCCEEDED, TaskState.PENDING
DONE = WorkflowStatus.SUCCEEDED


class Watching:
    """`watch` running in a task, its updates collected as they come."""

    def __init__(self, store: FakeSnapshots, feed: Feed, execution_id: str | None = "x", **kw):
        options = {"poll_s": 0.02, "reconnect_s": 0.05, **kw}
        self.updates: list[WatchUpdate] = []
        self._gen = watch(store, feed.factory, execution_id, **options)
        self.task = asyncio.create_task(self._consume())

    async def _consume(self) -> None:
        async for update in self._gen:
            self.updates.append(update)

    def seqs(self) -> list[int | None]:
        return [u.event.seq if u.event else None for u in self.updates]

    async def count(self, n: int) -> None:
        await until(lambda: len(self.updates) >= n)

    async def stop(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


def test_the_snapshot_comes_first_taken_after_the_source_opened_then_each_event_in_order():
    async def scenario() -> None:
        log: list[str] = []
        store = FakeSnapshots(execution(a=P, b=P), log=log)
        feed = Feed(log)
        w = Watching(store, feed)
        await w.count(1)
        assert log == ["open", "get x"]
        first = w.updates[0]
        assert (
            first.event is None
            and first.mode is WatchMode.LIVE
            and states(first)
            == {
                "a": P,
                "b": P,
            }
        )
        feed.push(started(1, "a"), progress(2, "a", 0.5), succeeded(3, "a", metrics={"f1": 0.9}))
        await w.count(4)
        assert w.seqs() == [None, 1, 2, 3]
        assert [states(u)["a"] for u in w.updates] == [P, R, R, S]
        assert w.updates[2].execution.tasks["a"].progress == 0.5
        store.set(execution(status=DONE, a=S, b=S))
        feed.push(started(4, "b"), succeeded(5, "b"), finished(6))
        await asyncio.wait_for(w.task, 2)
        assert w.updates[-1].execution == store.executions["x"]
        assert feed.closed == 1

    run(scenario)


def test_duplicates_are_dropped_by_seq():
    async def scenario() -> None:
        store = FakeSnapshots(execution(a=P, b=P))
        feed = Feed()
        w = Watching(store, feed)
        await w.count(1)
        feed.push(started(1, "a"), started(1, "a"), progress(2, "a", 0.3), started(1, "a"))
        feed.push(progress(2, "a", 0.3), progress(3, "a", 0.6))
        await w.count(4)
        await asyncio.sleep(0.05)
        assert w.seqs() == [None, 1, 2, 3]
        assert store.calls == 1  # a duplicate is not a gap
        await w.stop()

    run(scenario)


def test_a_gap_re_snapshots_before_the_event_and_numbering_goes_on_from_it():
    async def scenario() -> None:
        store = FakeSnapshots(execution(a=P, b=P))
        feed = Feed()
        w = Watching(store, feed)
        await w.count(1)
        feed.push(started(1, "a"), started(2, "b"))
        await w.count(3)
        store.set(execution(a=S, b=R))  # what the lost events 3 and 4 did
        feed.push(progress(5, "b", 0.5), progress(6, "b", 0.7), progress(4, "b", 0.1))
        await w.count(6)
        await asyncio.sleep(0.05)
        assert w.seqs() == [None, 1, 2, None, 5, 6]
        assert states(w.updates[3]) == {"a": S, "b": R}
        assert w.updates[-1].execution.tasks["b"].progress == 0.7
        assert store.calls == 2
        await w.stop()

    run(scenario)


def test_a_new_ownership_epoch_re_snapshots_and_the_old_owner_is_ignored():
    async def scenario() -> None:
        store = FakeSnapshots(execution(a=P, b=P))
        feed = Feed()
        w = Watching(store, feed)
        await w.count(1)
        feed.push(started(epoch(1, 1), "a"), started(epoch(1, 2), "b"))
        await w.count(3)
        store.set(execution(a=S, b=R))  # the new owner found a in the cache
        # the new owner's first event, then a late one of the old owner
        feed.push(event(epoch(2, 0), EventType.WORKFLOW_ASSIGNED, data={"epoch": 2}))
        feed.push(progress(epoch(1, 3), "b", 0.9), started(epoch(2, 1), "b"))
        await w.count(6)
        await asyncio.sleep(0.05)
        assert w.seqs() == [None, epoch(1, 1), epoch(1, 2), None, epoch(2, 0), epoch(2, 1)]
        assert states(w.updates[3]) == {"a": S, "b": R}
        assert w.updates[-1].execution.tasks["b"].progress == 0.0  # not the old owner's 0.9
        await w.stop()

    run(scenario)


def test_events_never_move_a_task_or_the_workflow_backwards():
    async def scenario() -> None:
        store = FakeSnapshots(execution(a=S, b=R))
        feed = Feed()
        w = Watching(store, feed)
        await w.count(1)
        # After a snapshot the first event is taken whatever its seq: here a stale one.
        feed.push(started(7, "a"), progress(8, "a", 0.2), event(9, EventType.TASK_QUEUED, "b"))
        feed.push(event(10, EventType.TASK_QUEUED, "b", status="submitted"))
        feed.push(event(11, EventType.TASK_METRIC, "a", metrics={"late": 1.0}))
        await w.count(6)
        for update in w.updates:
            assert states(update) == {"a": S, "b": R}
            assert update.execution.tasks["a"].progress == 0.0 and not update.execution.metrics
        # The store lags the events (a success is committed once its checkpoint is stored):
        # a re-snapshot must not take back what the events showed.
        feed.push(succeeded(12, "b"))
        await w.count(7)
        feed.push(progress(20, "b", 0.1))  # a gap: re-snapshot, b still running in the store
        await asyncio.sleep(0.05)
        assert store.calls == 2 and states(w.updates[-1]) == {"a": S, "b": S}
        # a finished workflow stays finished
        store.set(execution(status=DONE, a=S, b=S))
        feed.push(finished(21), event(22, EventType.WORKFLOW_STARTED, status="running"))
        await asyncio.wait_for(w.task, 2)
        assert all(u.execution.status is DONE for u in w.updates[-2:])

    run(scenario)


def test_the_watch_ends_with_the_store_once_it_shows_the_finish():
    async def scenario() -> None:
        store = FakeSnapshots(execution(a=R))
        feed = Feed()
        w = Watching(store, feed)
        await w.count(1)
        feed.push(succeeded(1, "a", metrics={"f1": 0.5}), finished(2))
        await w.count(3)
        await asyncio.sleep(0.15)
        assert not w.task.done()  # the store has not committed the finish yet
        final = execution(status=DONE, a=S)
        final.tasks["a"].metrics = {"f1": 0.5, "auc": 0.7}
        store.set(final)
        await asyncio.wait_for(w.task, 2)
        assert w.updates[-1].event is None and w.updates[-1].execution == final

    run(scenario)


def test_an_execution_already_finished_gives_its_snapshot_and_ends():
    async def scenario() -> None:
        store = FakeSnapshots(execution(status=DONE, a=S))
        w = Watching(store, Feed())
        await asyncio.wait_for(w.task, 2)
        assert [u.event for u in w.updates] == [None]
        assert w.updates[0].execution == store.executions["x"]

    run(scenario)


def test_an_unknown_execution_is_an_error_at_once():
    async def scenario() -> None:
        feed = Feed()
        w = Watching(FakeSnapshots(), feed)
        with pytest.raises(ExecutionNotFoundError):
            await asyncio.wait_for(w.task, 2)
        assert feed.closed == 1

    run(scenario)


def test_polling_while_the_source_is_away_yields_only_changes_then_goes_live_again():
    async def scenario() -> None:
        store = FakeSnapshots(execution(a=R, b=P))
        feed = Feed()
        w = Watching(store, feed)
        await w.count(1)
        feed.push(progress(1, "a", 0.5))
        await w.count(2)
        feed.fail_opens = 2  # the first two reopen attempts fail
        feed.push(SourceUnavailable("broker gone"))
        await w.count(3)
        assert w.updates[2].mode is WatchMode.POLLING and w.updates[2].event is None
        calls = store.calls
        await until(lambda: store.calls >= calls + 3)
        assert len(w.updates) == 3  # nothing changed: nothing yielded
        store.set(execution(a=S, b=R))
        await w.count(4)
        assert w.updates[3].mode is WatchMode.POLLING and states(w.updates[3]) == {"a": S, "b": R}
        await until(lambda: any(u.mode is WatchMode.LIVE for u in w.updates[4:]))
        assert feed.open_attempts == 4 and feed.opened == 2
        back = w.updates[-1]
        assert back.mode is WatchMode.LIVE and back.event is None
        store.set(execution(status=DONE, a=S, b=S))
        feed.push(succeeded(9, "b"), finished(10))
        await asyncio.wait_for(w.task, 2)
        assert [u.mode for u in w.updates[-2:]] == [WatchMode.LIVE] * 2
        assert w.updates[-1].execution == store.executions["x"]
        assert feed.closed == feed.open_attempts  # every source made is closed

    run(scenario)


def test_a_source_down_at_start_begins_in_polling_and_a_broken_store_is_waited_out():
    async def scenario() -> None:
        store = FakeSnapshots(execution(a=R))
        feed = Feed()
        feed.fail_opens = 10**6
        w = Watching(store, feed, reconnect_s=0.02)
        await w.count(1)
        assert w.updates[0].mode is WatchMode.POLLING
        store.down = True
        calls = store.calls
        await until(lambda: store.calls >= calls + 3)
        store.set(execution(a=S))
        store.down = False
        await w.count(2)
        assert states(w.updates[1]) == {"a": S} and w.updates[1].mode is WatchMode.POLLING
        assert feed.open_attempts >= 3 and not w.task.done()
        await w.stop()

    run(scenario)


def test_a_source_that_breaks_otherwise_also_falls_back_to_polling():
    async def scenario() -> None:
        store = FakeSnapshots(execution(a=R))
        feed = Feed()
        w = Watching(store, feed)
        await w.count(1)
        feed.push(RuntimeError("a bug in a source"))
        await w.count(2)
        assert w.updates[1].mode is WatchMode.POLLING
        await until(lambda: w.updates[-1].mode is WatchMode.LIVE)
        await w.stop()

    run(scenario)


def test_a_quiet_live_feed_re_snapshots_after_resync_s():
    async def scenario() -> None:
        store = FakeSnapshots(execution(a=R))
        w = Watching(store, Feed(), resync_s=0.05)
        await w.count(1)
        store.set(execution(status=DONE, a=S))  # its events were lost upstream
        await asyncio.wait_for(w.task, 2)
        assert w.updates[-1].execution == store.executions["x"]

    run(scenario)


def test_watching_everything_follows_new_executions_and_skips_cluster_events():
    async def scenario() -> None:
        store = FakeSnapshots(execution("x", a=R))
        feed = Feed()
        w = Watching(store, feed, execution_id=None)
        await w.count(1)
        store.set(execution("y", a=R))
        feed.push(event(1, EventType.INSTANCE_JOINED, execution_id=""))
        feed.push(event(5, EventType.TASK_PROGRESS, "a", execution_id="y", progress=0.5))
        submitted = {"tasks": {"t": "kind"}}
        feed.push(event(1, EventType.WORKFLOW_SUBMITTED, execution_id="z", data=submitted))
        feed.push(started(2, "t", execution_id="z"), succeeded(3, "a"))
        feed.push(started(1, "x", execution_id="nowhere"))
        await w.count(6)
        await asyncio.sleep(0.05)
        seen = [(u.execution.execution_id, u.event.seq if u.event else None) for u in w.updates]
        assert seen == [("x", None), ("y", None), ("y", 5), ("z", 1), ("z", 2), ("x", 3)]
        assert states(w.updates[-2]) == {"t": R}
        assert w.updates[-3].event is not None and w.updates[-3].event.type is (
            EventType.WORKFLOW_SUBMITTED
        )
        await w.stop()
        assert feed.closed == 1

    run(scenario)


def test_the_bus_source_feeds_the_watcher_and_a_slow_reader_costs_a_re_snapshot():
    async def scenario() -> None:
        bus = InProcessBus()
        store = FakeSnapshots(execution(a=P))
        updates: list[WatchUpdate] = []
        source = BusSource(bus, "x", maxsize=2)
        gen = watch(store, lambda: source, "x")
        updates.append(await anext(gen))
        # published before the watcher reads: the queue holds two, the rest are dropped
        for seq, item in enumerate([started(1, "a")] + [progress(0, "a", 0.1)] * 3, start=1):
            bus.publish(item.model_copy(update={"seq": seq}))
        bus.publish(event(9, EventType.TASK_PROGRESS, "a", execution_id="other", progress=1))
        updates += [await anext(gen), await anext(gen)]
        store.set(execution(status=DONE, a=S))
        bus.publish(progress(5, "a", 0.9))  # after the dropped 3 and 4: a gap
        updates += [await anext(gen), await anext(gen)]
        assert source.dropped == 2
        assert [u.event.seq if u.event else None for u in updates] == [None, 1, 2, None, 5]
        await gen.aclose()
        assert bus._subscriptions == ()

    run(scenario)
