"""The thread form: the same updates as the async form, a clean stop, errors kept."""

from __future__ import annotations

import threading
import time

from tests.unit.events_watch.fakes import (
    FakeSnapshots,
    execution,
    finished,
    progress,
    run,
    started,
    succeeded,
)
from workbench.dag.states import TaskState, WorkflowStatus
from workbench.errors import ExecutionNotFoundError
from workbench.events.bus import InProcessBus
from workbench.events.models import Event
from workbench.events.watch import BusSource, WatchUpdate, watch
from workbench.events.watch_thread import WatchThread

R, S = TaskState.RUNNING, TaskState.SUCCEEDED
SCRIPT = [started(1, "a"), progress(2, "a", 0.5), succeeded(3, "a"), started(4, "b")]


def wait_for(condition, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.002)


def publish_script(bus: InProcessBus, store: FakeSnapshots) -> None:
    for item in SCRIPT:
        bus.publish(item)
    store.set(execution(status=WorkflowStatus.SUCCEEDED, a=S, b=S))
    bus.publish(succeeded(5, "b"))
    bus.publish(finished(6))


def test_the_thread_form_delivers_the_same_updates_and_ends_with_the_execution():
    def key(u: WatchUpdate) -> tuple[object, ...]:
        return (u.event.seq if u.event else None, u.mode, u.execution)

    async def with_async_form() -> list[WatchUpdate]:
        bus, store = InProcessBus(), FakeSnapshots(execution(a=R, b=R))
        updates = []
        async for update in watch(store, lambda: BusSource(bus, "x"), "x"):
            updates.append(update)
            if len(updates) == 1:  # from another thread, as an orchestrator publishes
                threading.Thread(target=publish_script, args=(bus, store)).start()
        return updates

    expected: list[WatchUpdate] = []

    async def collect() -> None:
        expected.extend(await with_async_form())

    run(collect)

    bus, store = InProcessBus(), FakeSnapshots(execution(a=R, b=R))
    got: list[WatchUpdate] = []
    thread = WatchThread(store, lambda: BusSource(bus, "x"), got.append, "x").start()
    wait_for(lambda: len(got) == 1)
    publish_script(bus, store)
    assert thread.join(timeout=5)
    assert thread.error is None
    assert [key(u) for u in got] == [key(u) for u in expected]
    assert got[-1].execution == store.executions["x"]
    assert bus._subscriptions == ()


def test_stop_ends_a_watch_of_everything_and_a_failing_callback_does_not():
    bus, store = InProcessBus(), FakeSnapshots(execution(a=R))
    got: list[WatchUpdate] = []

    def callback(update: WatchUpdate) -> None:
        got.append(update)
        raise ValueError("a broken widget")

    with WatchThread(store, lambda: BusSource(bus), callback) as thread:
        wait_for(lambda: len(got) == 1)
        bus.publish(progress(1, "a", 0.5))
        wait_for(lambda: len(got) == 2)
        assert thread.running
    assert not thread.running and thread.error is None
    assert bus._subscriptions == ()
    assert not any(t.name == "workbench-watch" for t in threading.enumerate())


def test_an_error_of_the_watch_ends_the_thread_and_is_kept():
    thread = WatchThread(FakeSnapshots(), lambda: BusSource(InProcessBus()), print, "nope")
    thread.start()
    assert thread.join(timeout=5)
    assert isinstance(thread.error, ExecutionNotFoundError)


def test_stop_from_the_callback_itself_does_not_deadlock():
    bus, store = InProcessBus(), FakeSnapshots(execution(a=R))
    holder: list[WatchThread] = []
    got: list[Event | None] = []

    def callback(update: WatchUpdate) -> None:
        got.append(update.event)
        holder[0].stop()

    holder.append(WatchThread(store, lambda: BusSource(bus), callback))
    holder[0].start()
    assert holder[0].join(timeout=5)
    assert got == [None]
