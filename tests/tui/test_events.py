"""The event screen over the recorded backend: it follows the newest events, filters by text or
`type:`, pauses on Space (and catches up after); and its EventLog on its own, which keeps a
bounded history and draws the newest items."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from rich.segment import Segment
from textual.app import App, ComposeResult
from textual.pilot import Pilot
from textual.widgets import Input

from tests.tui.recorded import RecordedBackend, executions
from tui.app import WorkbenchApp
from tui.screens.events import EventsScreen
from tui.widgets import EventLog
from workbench.events.models import Event, EventType

SIZE = (140, 40)


async def until(pilot: Pilot[Any], ready: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 10
    while not ready():
        if time.monotonic() > deadline:
            raise AssertionError(f"the app never showed {what}")
        await pilot.pause(0.05)


def on_events_screen(scenario: Callable[[WorkbenchApp, Pilot[Any]], Awaitable[None]]) -> None:
    """`scenario` once every recorded event has reached the event screen."""

    async def main() -> None:
        app = WorkbenchApp(RecordedBackend(), mode="events")  # type: ignore[arg-type]
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: len(app.state.executions) == len(executions()), "all")
            await until(pilot, lambda: "fraud v3 none → staging" in shown(app)[-1], "the last")
            await scenario(app, pilot)

    asyncio.run(main())


def shown(app: WorkbenchApp) -> list[str]:
    """The lines on screen, blank ones left out."""
    return [line for line in app.screen.query_one(EventLog).shown() if line]


def test_a_filter_shows_only_matching_events() -> None:
    async def scenario(app: WorkbenchApp, pilot: Pilot[Any]) -> None:
        app.screen.query_one("#filter", Input).value = "type:task.failed"
        await until(pilot, lambda: all("task.failed" in line for line in shown(app)), "failures")
        assert shown(app)
        app.screen.query_one("#filter", Input).value = "fraud v3"
        await until(pilot, lambda: len(shown(app)) == 2, "the two registry events")
        assert all("fraud v3" in line for line in shown(app))

    on_events_screen(scenario)


def test_space_holds_the_view_still_and_following_catches_up() -> None:
    async def scenario(app: WorkbenchApp, pilot: Pilot[Any]) -> None:
        await pilot.press("space")
        assert isinstance(app.screen, EventsScreen) and app.screen.paused
        before = shown(app)
        app.feed.on_other(
            Event(
                type=EventType.MODEL_DEPLOYED,
                execution_id="",
                workflow_id="fraud",
                message="fraud v3 deployed",
                instance_id="orch-7f3a",
                seq=0,
                timestamp=time.time(),
            )
        )
        await until(pilot, lambda: app.state.events[-1].message == "fraud v3 deployed", "it")
        await pilot.pause(0.1)
        assert shown(app) == before
        await pilot.press("space")
        await until(pilot, lambda: "fraud v3 deployed" in shown(app)[-1], "it after the pause")

    on_events_screen(scenario)


class LogApp(App[None]):
    def compose(self) -> ComposeResult:
        yield EventLog(lambda n: [Segment(f"line {n}")], capacity=50)


@pytest.mark.parametrize("burst", [10, 200])
def test_the_log_keeps_its_newest_items_and_shows_the_last(burst: int) -> None:
    async def main() -> None:
        app = LogApp()
        async with app.run_test(size=(40, 10)) as pilot:
            log = app.query_one(EventLog)
            for start in range(0, 400, burst):
                log.extend(range(start, start + burst))
                await pilot.pause()
            assert log.items == list(range(350, 400))
            assert log.shown() == [f"line {n}" for n in range(390, 400)]
            log.replace([1, 2])
            await pilot.pause()
            assert log.shown()[:3] == ["line 1", "line 2", ""]

    asyncio.run(main())
