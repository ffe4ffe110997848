"""What the UIs that watch everything need besides the views: the events of no execution
(trials, models, the cluster) through `on_other`, every change of mode through `on_mode` even
with nothing to show, and a burst taken from the source in one step."""

from __future__ import annotations

import asyncio
import contextlib

from tests.unit.events_watch.fakes import (
    FakeSnapshots,
    Feed,
    event,
    execution,
    progress,
    run,
    until,
)
from workbench.dag.states import TaskState
from workbench.events.bus import InProcessBus
from workbench.events.models import Event, EventType
from workbench.events.watch import BusSource, SourceUnavailable, WatchMode, WatchUpdate, watch


async def consume(gen: object, into: list[WatchUpdate]) -> None:
    async for update in gen:  # type: ignore[attr-defined]
        into.append(update)


def test_events_of_no_execution_go_to_on_other_and_move_no_view() -> None:
    async def scenario() -> None:
        feed = Feed()
        others: list[Event] = []
        updates: list[WatchUpdate] = []
        store = FakeSnapshots(execution("x", a=TaskState.RUNNING))
        gen = watch(store, feed.factory, None, poll_s=0.02, on_other=others.append)
        task = asyncio.create_task(consume(gen, updates))
        await until(lambda: len(updates) == 1)  # the snapshot
        trial = event(1, EventType.TRIAL_FINISHED, "trial-0", execution_id="study-1")
        model = event(1, EventType.MODEL_TRANSITION, execution_id="")
        feed.push(trial, model, progress(1, "a", 0.5))
        await until(lambda: len(updates) == 2)
        assert others == [trial, model]
        assert updates[-1].execution.tasks["a"].progress == 0.5
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    run(scenario)


def test_a_mode_change_is_told_even_with_no_execution_to_show_it_on() -> None:
    async def scenario() -> None:
        feed = Feed()
        modes: list[WatchMode] = []
        updates: list[WatchUpdate] = []
        gen = watch(
            FakeSnapshots(), feed.factory, None, poll_s=0.02, reconnect_s=0.05, on_mode=modes.append
        )
        task = asyncio.create_task(consume(gen, updates))
        await until(lambda: feed.opened == 1)
        feed.push(SourceUnavailable("broker gone"))
        await until(lambda: modes == [WatchMode.POLLING])
        await until(lambda: modes == [WatchMode.POLLING, WatchMode.LIVE])
        assert updates == []  # nothing to show: the mode came only through on_mode
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    run(scenario)


def test_the_bus_source_hands_over_a_burst_with_one_wake_up_and_drops_beyond_its_size() -> None:
    async def scenario() -> None:
        bus = InProcessBus()
        source = BusSource(bus, maxsize=5)
        await source.open()
        burst = [progress(n, "a", n / 10) for n in range(1, 8)]
        await asyncio.to_thread(lambda: [bus.publish(e) for e in burst])
        first = await anext(source)
        assert [first, *source.drain()] == burst[:5]
        assert source.dropped == 2 and source.drain() == []
        later = progress(8, "a", 0.8)
        waiting = asyncio.create_task(anext(source))
        await asyncio.sleep(0.01)
        await asyncio.to_thread(bus.publish, later)
        assert await asyncio.wait_for(waiting, 2) == later
        await source.close()

    run(scenario)
